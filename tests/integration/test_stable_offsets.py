"""Stable committed offsets against the real Kafka: a pending transaction's offset is waited
for, never read from before it (workers.stable_offsets)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from fraudstream.settings import Settings
from fraudstream.workers.stable_offsets import OffsetsUnsettled, StableOffsets
from fraudstream.workers.topics import ensure_topics

pytestmark = pytest.mark.integration


async def pending_offset(settings: Settings, offset: int) -> AIOKafkaProducer:
    """A producer whose open transaction commits ``offset`` of transactions[0] for the group."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap,
                                transactional_id=f"{settings.app_id}-stable-test",
                                enable_idempotence=True, acks="all")
    await producer.start()
    await producer.begin_transaction()
    await producer.send_and_wait(settings.topic_scores, b"out", partition=0)
    await producer.send_offsets_to_transaction(
        {TopicPartition(settings.topic_transactions, 0): offset}, settings.app_id)
    return producer


async def plain_read(settings: Settings) -> int | None:
    """The committed offset as aiokafka's consumer (and so Faust) reads it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                group_id=settings.app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(settings.topic_transactions, 0))
    finally:
        await consumer.stop()


def test_a_pending_offset_is_waited_for_while_the_plain_read_is_stale(
        settings: Settings) -> None:
    ensure_topics(settings)
    where = (settings.topic_transactions, 0)

    async def run() -> None:
        first = await pending_offset(settings, 10)
        await first.commit_transaction()
        await first.stop()
        producer = await pending_offset(settings, 40)
        offsets = StableOffsets(settings, settings.app_id)
        try:
            # The trap: while the transaction is open, the plain read answers the offset
            # from before it.
            assert await plain_read(settings) == 10
            read = asyncio.ensure_future(offsets.read({settings.topic_transactions: [0, 1]}))
            await asyncio.sleep(1.5)
            assert not read.done(), read.result()
            await producer.commit_transaction()
            async with asyncio.timeout(10):
                found = await read
            assert found[where] == 40
            # Partition 1: nothing committed for the group.
            assert found[(settings.topic_transactions, 1)] is None
        finally:
            await producer.stop()
            await offsets.stop()

    asyncio.run(run())


def test_an_aborted_offset_leaves_the_one_before(settings: Settings) -> None:
    ensure_topics(settings)

    async def run() -> None:
        first = await pending_offset(settings, 7)
        await first.commit_transaction()
        await first.stop()
        producer = await pending_offset(settings, 99)
        offsets = StableOffsets(settings, settings.app_id)
        try:
            read = asyncio.ensure_future(offsets.read({settings.topic_transactions: [0]}))
            await asyncio.sleep(0.5)
            await producer.abort_transaction()
            async with asyncio.timeout(10):
                assert (await read) == {(settings.topic_transactions, 0): 7}
        finally:
            await producer.stop()
            await offsets.stop()

    asyncio.run(run())


def test_an_offset_pending_past_the_wait_is_an_error_not_a_guess(settings: Settings) -> None:
    ensure_topics(settings)

    async def run() -> None:
        producer = await pending_offset(settings, 5)
        offsets = StableOffsets(settings, settings.app_id, timeout_s=1.0)
        try:
            with pytest.raises(OffsetsUnsettled, match="still pending"):
                await offsets.read({settings.topic_transactions: [0]})
        finally:
            await producer.abort_transaction()
            await producer.stop()
            await offsets.stop()

    asyncio.run(run())
