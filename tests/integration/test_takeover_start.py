"""Where a new owner of a partition starts: the committed offset once no transaction holding
one is pending, never the one from before it (workers.stable_offsets), against real Kafka.

A transaction that commits an offset of partition 0 for the group is left open while a worker
starts; it stands for a predecessor whose last commit the broker is still completing when the
new owner comes (seen on three brokers: 430 records scored twice). The worker must wait for it
and start at the offset it commits. Reading the committed offset as aiokafka and Faust read it
answers the offset from before the transaction: the worker would score the records in between
a second time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from fraudstream.feeds import outgoing
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.streaming import new_producer, produce_paced
from fraudstream.workers.pool import WorkerPool
from fraudstream.workers.topics import ensure_topics
from tests.conftest import wait_until
from tests.integration.test_zombie_worker import outputs

pytestmark = pytest.mark.integration


async def send_all(settings: Settings, count: int) -> None:
    ds = simulate(SimulationConfig(n_customers=200, n_terminals=300, nb_days=5, seed=11,
                                   id_prefix="ts"))
    producer = new_producer(settings)
    await producer.start()
    try:
        await produce_paced(producer, list(outgoing(ds, 0, count, with_labels=False)),
                            topic=settings.topic_transactions, labels_topic=settings.topic_labels,
                            rate=0, label_delay_s=0)
    finally:
        await producer.stop()


async def offset_transaction(settings: Settings, offset: int, tid: str) -> AIOKafkaProducer:
    """An open transaction that commits ``offset`` of transactions[0] for the worker's group."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, transactional_id=tid,
                                enable_idempotence=True, acks="all")
    await producer.start()
    await producer.begin_transaction()
    await producer.send_offsets_to_transaction(
        {TopicPartition(settings.topic_transactions, 0): offset}, settings.app_id)
    return producer


def end_offset(settings: Settings, partition: int) -> int:
    from fraudstream import kafka_clients

    consumer = kafka_clients.sync_consumer(settings)
    try:
        from kafka import TopicPartition as SyncTP

        tp = SyncTP(settings.topic_transactions, partition)
        return int(consumer.end_offsets([tp])[tp])
    finally:
        consumer.close()


def test_a_new_owner_waits_for_a_pending_commit_and_starts_after_it(settings: Settings) -> None:
    s = dataclasses.replace(settings, processing_guarantee="exactly_once")
    ensure_topics(s)
    asyncio.run(send_all(s, 600))
    end = end_offset(s, 0)
    early, pending_at = 10, end - 20
    assert pending_at > early + 50, f"partition 0 got too few records ({end})"

    async def commit_early() -> AIOKafkaProducer:
        first = await offset_transaction(s, early, f"{s.app_id}-earlier")
        await first.commit_transaction()
        await first.stop()
        return await offset_transaction(s, pending_at, f"{s.app_id}-predecessor")

    loop = asyncio.new_event_loop()
    pending = loop.run_until_complete(commit_early())
    pool = WorkerPool(s, 1)
    pool.start()
    worker = pool.workers[0]
    try:
        wait_until(lambda: "committed offsets pending in a transaction" in worker.log_tail(400),
                   120, "the worker did not wait for the pending offset")
        time.sleep(2.0)  # a worker that did not wait would score partition 0 now
        loop.run_until_complete(pending.commit_transaction())
        loop.run_until_complete(pending.stop())
        pool.wait_ready(timeout=120)
        expected = 600 - pending_at
        named = asyncio.run(outputs(s, expected, timeout=90))
    finally:
        loop.close()
        pool.stop()
        print(f"--- worker log tail\n{worker.log_tail(60)}")

    counts = Counter(named)
    on_zero = sorted(o for p, o in counts if p == 0)
    assert on_zero == list(range(pending_at, end)), \
        f"partition 0 decided {len(on_zero)} records from {on_zero[:1]}; expected " \
        f"{pending_at}..{end - 1}"
    assert not {k: n for k, n in counts.items() if n > 1}
    others = sum(1 for p, _o in counts if p != 0)
    assert others == 600 - end
