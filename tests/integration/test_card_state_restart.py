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
