"""Start an app over from nothing: its topics, its group's offsets and its workers' local
tables (``fraudstream demo --fresh``).

The demo streams the same simulated customers every run, dated to end today. On the topics of
an earlier run, every card already holds the same transactions under other ids: its velocity
features count them twice, and its record (its decisions kept for deduplication) grows with
each run. Measured on 2026-12-03 after a day of demos: card records of 9.0 KB on average
(68 decisions each), where one run from empty tops out near 32 decisions.

Deleting the topics alone is not enough: the group's committed offsets can outlive them (seen
on 2026-12-03 when the topics were deleted seconds after the broker started: the new workers
sought to the old offsets, past the end of the empty topics, and scored nothing for a whole
90 s run; they now start such partitions from their first record, ``workers.app``). So the
group is deleted first, which Kafka refuses while any member is in it: a running worker of the
app stops the reset before anything is deleted.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from typing import Any

from fraudstream.settings import Settings
from fraudstream.workers.pool import app_datadir
from fraudstream.workers.topics import (
    card_changelog_spec,
    create_again,
    delete_topics_and_wait,
    merchants_changelog_spec,
    topic_specs,
)

#: A worker that stopped stays a (static) member of the group until its session times out
#: (``broker_session_timeout``, 6 s): the group is deleted as soon as it is empty, within this.
GROUP_EMPTY_WAIT_S = 20.0
_POLL_S = 0.5
CLIENT_ID = "fraudstream-reset"


class AppBusy(RuntimeError):
    """The app's group still has members after ``GROUP_EMPTY_WAIT_S``: its workers run."""


def app_topics(settings: Settings, existing: Iterable[str]) -> list[str]:
    """The topics of ``existing`` that belong to the app: every contract topic but the model
    registry's (models outlive a demo), and Faust's (changelogs, named after the app id)."""
    contract = {t.name for t in topic_specs(settings)} - {settings.topic_model_updates}
    return sorted(t for t in existing
                  if t in contract or t.startswith(f"{settings.app_id}-"))


def reset_app(settings: Settings) -> list[str]:
    """Delete the app's group, its topics and its workers' local tables; create the contract
    topics and the table changelogs again, empty. Returns the topics deleted.

    Raises ``AppBusy`` (nothing deleted) when workers of the app are still in its group, and
    ``TimeoutError`` when Kafka does not finish the deletion or the creation in time.
    """
    from fraudstream import kafka_clients

    admin = kafka_clients.admin(settings, client_id=CLIENT_ID, request_timeout_ms=15000)
    try:
        _delete_group(admin, settings.app_id)
        topics = app_topics(settings, admin.list_topics())
    finally:
        admin.close()
    delete_topics_and_wait(settings, topics, CLIENT_ID)
    shutil.rmtree(app_datadir(settings), ignore_errors=True)
    changelogs = [card_changelog_spec(settings), merchants_changelog_spec(settings)]
    create_again(settings, {t.name for t in topic_specs(settings) + changelogs}, changelogs)
    return topics


def _delete_group(admin: Any, group: str) -> None:
    """Delete ``group``: while it has members, or its coordinator is still loading or not
    there yet (right after the broker started), ask again until ``GROUP_EMPTY_WAIT_S``."""
    deadline = time.monotonic() + GROUP_EMPTY_WAIT_S
    while (answer := _ask_to_delete(admin, group)) not in ("OK", "GroupIdNotFoundError"):
        if time.monotonic() > deadline:
            if answer == "NonEmptyGroupError":
                raise AppBusy(f"the consumer group {group} still has members: workers of "
                              "this app are running; stop them (`fraudstream supervise`, "
                              "`fraudstream worker`) and try again")
            raise TimeoutError(f"Kafka did not delete the consumer group {group} ({answer})")
        time.sleep(_POLL_S)


def _ask_to_delete(admin: Any, group: str) -> str:
    """The broker's answer to deleting ``group``: "OK" or the name of its error.

    kafka-python 3 raises, instead of answering, when it finds no coordinator for the group:
    on a broker that has never held a group, the first lookup creates the offsets topic and
    is refused with CoordinatorNotAvailable (measured 2026-12-05: ``make demo``'s reset
    stopped with that traceback on a fresh stack). Such retriable errors are answers too.
    """
    from kafka.errors import KafkaError

    try:
        return str(admin.delete_groups([group]).get(group))
    except KafkaError as exc:
        if not exc.retriable:
            raise
        return type(exc).__name__


def records_in(settings: Settings, topic: str) -> int:
    """How many offsets ``topic`` holds (0 if it does not exist)."""
    from kafka.structs import TopicPartition

    from fraudstream import kafka_clients

    consumer = kafka_clients.sync_consumer(settings, client_id=CLIENT_ID)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return 0
        ends, starts = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        consumer.close()
