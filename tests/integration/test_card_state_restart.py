"""A worker SIGKILLed and restarted in its slot gets its card state back from local disk.

The proof does not rely on timing: after the kill, every record of the card table's changelog
is deleted from Kafka (DeleteRecords), so the restarted worker can only know the card's history
if it kept it itself. With the memory store (the control) it cannot, which shows the test can
fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from datetime import UTC, datetime

import orjson
import pytest

from fraudstream.settings import Settings
from fraudstream.streaming import Outgoing
from tests.integration.test_scoring_pipeline import run_through
from tests.stack_fixtures import running_pool

pytestmark = pytest.mark.integration


def transaction(n: int, at: float) -> Outgoing:
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"transaction_id": f"restart-{n}", "timestamp": stamp, "card_id": "card-restart",
            "merchant_id": "m-1", "amount": 20.0 + n}
    return Outgoing(b"card-restart", orjson.dumps(body), None)


def delete_changelog(settings: Settings) -> None:
    """Delete every record of the cards changelog (its log start moves to its end).

    Kafka deletes records only from topics whose cleanup policy includes "delete", so the
    compacted changelog gets "compact,delete" first.
    """
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType

    topic = f"{settings.app_id}-cards-changelog"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                             client_id="fraudstream-test")
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        ends = consumer.end_offsets(tps)
        assert sum(ends.values()) > 0, "the worker wrote no card state"
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={"cleanup.policy": "compact,delete"})])
        admin.delete_records({tp: end for tp, end in ends.items() if end > 0})
        starts = consumer.beginning_offsets(tps)
        assert starts == ends, f"records left in the changelog: {starts} != {ends}"
    finally:
        consumer.close()
        admin.close()


@pytest.mark.parametrize(("store", "kept"), [("rocksdb", True), ("memory", False)])
def test_a_worker_restarted_in_its_slot_keeps_its_card_state(settings: Settings, store: str,
                                                              kept: bool) -> None:
    s = dataclasses.replace(settings, table_store=store, emit_features=True)
    now = time.time()
    with running_pool(s, 1) as pool:
        first = [transaction(n, now - 3600 + 60 * n) for n in range(3)]
        scores, dlq = asyncio.run(run_through(s, first, expected=3))
        assert (len(scores), dlq) == (3, [])

        worker = pool.workers[0]
        worker.signal(signal.SIGKILL)
        assert worker.proc is not None
        worker.proc.wait(30)
        delete_changelog(s)
        worker.start()
        pool.wait_ready(timeout=120)

        scores, dlq = asyncio.run(run_through(s, [transaction(3, now - 60)], expected=4))
    assert dlq == []
    last = next(x for x in scores if x["transaction_id"] == "restart-3")
    # The 1-day count includes the transaction itself: 4 with the card's history, 1 without.
    assert last["features"]["card_nb_tx_1d"] == (4 if kept else 1)


def test_an_idle_card_is_tombstoned_in_the_changelog(settings: Settings) -> None:
    from kafka import KafkaConsumer, TopicPartition

    from fraudstream.workers.output import key_partition

    s = dataclasses.replace(settings, card_idle_days=31.0)
    # Two cards on one partition: the fresh one's time is that partition's event-time clock.
    idle, fresh = "card-idle", next(f"card-fresh-{i}" for i in range(1000) if key_partition(
        f"card-fresh-{i}".encode(), s.partitions) == key_partition(b"card-idle", s.partitions))
    partition = key_partition(b"card-idle", s.partitions)
    now = time.time()

    def tx(card: str, n: int, at: float) -> Outgoing:
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return Outgoing(card.encode(), orjson.dumps({
            "transaction_id": f"idle-{n}", "timestamp": stamp, "card_id": card,
            "merchant_id": "m-1", "amount": 10.0}), None)

    with running_pool(s, 1):
        scores, dlq = asyncio.run(run_through(s, [tx(idle, 0, now - 40 * 86_400),
                                                 tx(fresh, 1, now - 60)], expected=2))
        assert (len(scores), dlq) == (2, [])
        consumer = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap, auto_offset_reset="earliest",
                                 enable_auto_commit=False, consumer_timeout_ms=1000)
        tp = TopicPartition(f"{s.app_id}-cards-changelog", partition)
        consumer.assign([tp])
        seen: list[tuple[bytes, bytes | None]] = []
        deadline = time.monotonic() + 60  # the sweep runs every 10 s
        try:
            while time.monotonic() < deadline and (b"card-idle", None) not in seen:
                seen += [(r.key, r.value) for r in consumer]
        finally:
            consumer.close()
    assert (b"card-idle", None) in seen, seen
    assert (f"{fresh}".encode(), None) not in seen


def test_local_state_of_a_deleted_changelog_is_not_trusted(settings: Settings) -> None:
    """The changelog topic deleted and created again (empty) while the worker was down: its
    database claims offsets the new topic lacks, so it is wiped and the card starts afresh."""
    from fraudstream import kafka_clients
    from fraudstream.workers.topics import card_changelog_spec, ensure_topics

    s = dataclasses.replace(settings, table_store="rocksdb", emit_features=True)
    now = time.time()
    with running_pool(s, 1) as pool:
        first = [transaction(n, now - 3600 + 60 * n) for n in range(3)]
        assert len(asyncio.run(run_through(s, first, expected=3))[0]) == 3
        worker = pool.workers[0]
        worker.signal(signal.SIGKILL)
        assert worker.proc is not None
        worker.proc.wait(30)
        spec = card_changelog_spec(s)
        admin = kafka_clients.admin(s)
        try:
            admin.delete_topics([spec.name])
            deadline = time.monotonic() + 30
            while spec.name in admin.list_topics() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            admin.close()
        ensure_topics(s, [spec])
        worker.start()
        pool.wait_ready(timeout=120)
        scores, _dlq = asyncio.run(run_through(s, [transaction(3, now - 60)], expected=4))
    last = next(x for x in scores if x["transaction_id"] == "restart-3")
    assert last["features"]["card_nb_tx_1d"] == 1
