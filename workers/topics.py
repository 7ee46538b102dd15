"""The Kafka topics of the system, created idempotently before anything produces or consumes."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

from fraudstream.settings import Settings

logger = logging.getLogger(__name__)


#: The card table's changelog, besides compaction: segments roll every minute so compaction
#: keeps recovery short.
COMPACT_CHANGELOG = {"segment.ms": "60000", "min.cleanable.dirty.ratio": "0.1",
                     "delete.retention.ms": "60000"}


def card_changelog(settings: Settings) -> str:
    """The name Faust gives the ``cards`` table's changelog topic."""
    return f"{settings.app_id}-cards-changelog"


def merchant_labels_topic(settings: Settings) -> str:
    """The label path's internal topic between its two hops (``workers.merchant_labels``)."""
    return f"{settings.app_id}-merchant-labels"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    configs: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic named by the contracts, with its partitions and configuration."""
    p, rf = settings.partitions, settings.replication_factor
    isr = {"min.insync.replicas": "2"} if rf >= 3 else {}
    return [
        TopicSpec(settings.topic_transactions, p, rf, dict(isr)),
        TopicSpec(settings.topic_scores, p, rf, dict(isr)),
        TopicSpec(settings.topic_dlq, p, rf, {**isr, "max.message.bytes": "2097152"}),
        TopicSpec(settings.topic_labels, p, rf, dict(isr)),
        TopicSpec(settings.topic_model_updates, 1, rf, {**isr, "cleanup.policy": "compact"}),
        TopicSpec(settings.topic_events, 1, rf, dict(isr)),
    ]


def list_topics(settings: Settings) -> list[str]:
    """Every topic of the cluster, sorted (Kafka's internal ones included)."""
    from fraudstream import kafka_clients

    admin = kafka_clients.admin(settings, client_id="fraudstream-admin",
                                request_timeout_ms=15000)
    try:
        return sorted(admin.list_topics())
    finally:
        admin.close()


def card_changelog_spec(settings: Settings) -> TopicSpec:
    """The card table's changelog as the workers declare it (co-partitioned, compacted)."""
    rf = settings.replication_factor
    isr = {"min.insync.replicas": "2"} if rf >= 3 else {}
    return TopicSpec(card_changelog(settings), settings.partitions, rf,
                     {**isr, "cleanup.policy": "compact", **COMPACT_CHANGELOG})


def merchants_changelog_spec(settings: Settings) -> TopicSpec:
    """The merchants global table's changelog as the workers declare it (one partition,
    compacted)."""
    rf = settings.replication_factor
    isr = {"min.insync.replicas": "2"} if rf >= 3 else {}
    return TopicSpec(f"{settings.app_id}-merchants-changelog", 1, rf,
                     {**isr, "cleanup.policy": "compact", **COMPACT_CHANGELOG})


def ensure_topics(settings: Settings, extra: list[TopicSpec] | None = None) -> list[str]:
    """Create the missing topics (``extra`` ones too); returns the names created."""
    from kafka.errors import TopicAlreadyExistsError

    from fraudstream import kafka_clients

    admin = kafka_clients.admin(settings, client_id="fraudstream-admin",
                                request_timeout_ms=15000)
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topic_specs(settings) + (extra or []) if t.name not in existing]
        if not wanted:
            return []
        request = {t.name: {"num_partitions": t.partitions, "replication_factor": t.replication,
                            "configs": t.configs} for t in wanted}
        # Another process may create one between the listing and the request.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(request, wait_for_metadata=True)
        logger.info("created topics names=%s", [t.name for t in wanted])
        return [t.name for t in wanted]
    finally:
        admin.close()


def delete_run_topics(settings: Settings, tag: str, client_id: str) -> list[str]:
    """Delete the topics of one isolated run (a benchmark or chaos run): its own, named
    ``*-<tag>``, and Faust's, named after its app id. Returns their names. Best effort: a
    failure is logged, not raised (a cleanup must not fail the run it follows)."""
    from fraudstream import kafka_clients

    def mine(topic: str) -> bool:
        return topic.endswith(f"-{tag}") or topic.startswith(f"{settings.app_id}-")

    try:
        admin = kafka_clients.admin(settings, client_id=client_id, request_timeout_ms=15000)
    except Exception as exc:
        logger.warning("run topics not deleted tag=%s error=%r", tag, exc)
        return []
    try:
        topics = sorted(t for t in admin.list_topics() if mine(t))
        if topics:
            admin.delete_topics(topics)
        return topics
    except Exception as exc:
        logger.warning("run topics not deleted tag=%s error=%r", tag, exc)
        return []
    finally:
        admin.close()


#: How long the broker may take to forget deleted topics, or to create them again after that.
TOPICS_SETTLE_S = 60.0


def delete_topics_and_wait(settings: Settings, names: list[str], client_id: str,
                           timeout_s: float = TOPICS_SETTLE_S) -> None:
    """Delete ``names`` and return once the cluster no longer lists them (``TimeoutError``
    after ``timeout_s``)."""
    from fraudstream import kafka_clients

    if not names:
        return
    admin = kafka_clients.admin(settings, client_id=client_id, request_timeout_ms=15000)
    try:
        admin.delete_topics(names)
        deadline = time.monotonic() + timeout_s
        while set(names) & set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka did not delete {', '.join(names)} within "
                                   f"{timeout_s:.0f} s")
            time.sleep(0.5)
    finally:
        admin.close()


def create_again(settings: Settings, names: set[str], extra: list[TopicSpec] | None = None,
                 timeout_s: float = TOPICS_SETTLE_S) -> None:
    """``ensure_topics`` until every one of ``names`` is listed: right after a deletion the
    broker may still refuse a name as existing (``TimeoutError`` after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        ensure_topics(settings, extra)
        if names <= set(list_topics(settings)):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Kafka did not create {', '.join(sorted(names))} again within "
                               f"{timeout_s:.0f} s")
        time.sleep(1.0)


def partition_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    """Partitions of each of ``names`` that exists (missing topics are left out)."""
    from fraudstream import kafka_clients

    admin = kafka_clients.admin(settings, client_id="fraudstream-admin",
                                request_timeout_ms=15000)
    try:
        described = admin.describe_topics(names)
    finally:
        admin.close()
    counts = {}
    for topic in described:
        name = topic.get("topic") or topic.get("name")
        if name and topic.get("error_code", 0) == 0 and topic.get("partitions"):
            counts[name] = len(topic["partitions"])
    return counts


def check_partitions(settings: Settings) -> list[str]:
    """``partition_problems`` of the topics as they are in Kafka now."""
    names = [settings.topic_transactions, settings.topic_scores, settings.topic_dlq,
             card_changelog(settings)]
    return partition_problems(settings, partition_counts(settings, names))


def partition_problems(settings: Settings, counts: dict[str, int]) -> list[str]:
    """What is wrong with the topics' partition counts (``counts``: topic -> partitions).

    Every output goes to its input's partition number (so a takeover can read what the
    previous owner wrote), and the card table is co-partitioned with the transactions: the
    outputs need at least as many partitions as ``transactions``, and the workers' partition
    setting must be ``transactions``' count. A mismatch would dead-letter valid records, or
    write a card's state to another partition than its transactions.
    """
    source = settings.topic_transactions
    have = counts.get(source)
    if have is None:
        return []
    problems = []
    if settings.partitions != have:
        problems.append(f"{source} has {have} partitions but FRAUDSTREAM_PARTITIONS is "
                        f"{settings.partitions}: set FRAUDSTREAM_PARTITIONS={have} (the card "
                        "table is partitioned like the transactions)")
    for topic in (settings.topic_scores, settings.topic_dlq):
        n = counts.get(topic)
        if n is not None and n < have:
            problems.append(f"{topic} has {n} partitions, fewer than {source} ({have}): each "
                            "output goes to its input's partition number; add partitions "
                            f"(kafka-topics.sh --alter --topic {topic} --partitions {have})")
    changelog = card_changelog(settings)
    n = counts.get(changelog)
    if n is not None and n != have:
        problems.append(f"{changelog} has {n} partitions, not {have} like {source}: the card "
                        "table must be co-partitioned with the transactions; delete the "
                        "changelog topic and the workers' local state "
                        f"({settings.state_dir}/faust/{settings.app_id}) to rebuild it")
    return problems

