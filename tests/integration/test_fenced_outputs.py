"""Fenced outputs against the real Kafka: a zombie's writes never reach a committed reader."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from fraudstream.settings import Settings
from fraudstream.streaming import TopicReader
from fraudstream.workers.fenced_outputs import FencedError, FencedOutputs, transactional_id
from fraudstream.workers.topics import ensure_topics

pytestmark = pytest.mark.integration


def outputs(settings: Settings) -> FencedOutputs:
    def factory(tid: str) -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, transactional_id=tid,
                                enable_idempotence=True, acks="all")

    return FencedOutputs(app_id=settings.app_id, input_topic=settings.topic_transactions,
                         group_id=settings.app_id, producer_factory=factory)


async def committed_values(settings: Settings, partition: int, expected: int) -> list[bytes]:
    """Values of one scores partition as a read_committed reader sees them, once settled."""
    found: list[bytes] = []
    async with TopicReader(settings.kafka_bootstrap, [settings.topic_scores]) as reader:
        quiet = 0
        for _ in range(60):
            got = [(v or b"") for _t, _k, v, _ts in await reader.poll(0.3)]
            found += got
            quiet = 0 if got or len(found) < expected else quiet + 1
            if quiet >= 5:
                break
    return found


def group_offset(settings: Settings, partition: int) -> int | None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        offsets = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
    finally:
        admin.close()
    for tp, meta in offsets.items():
        if tp.topic == settings.topic_transactions and tp.partition == partition:
            return int(meta.offset)
    return None


def test_a_new_owner_fences_the_old_one_and_aborts_its_open_transaction(
        settings: Settings) -> None:
    ensure_topics(settings)
    scores = settings.topic_scores

    async def run() -> None:
        old, new = outputs(settings), outputs(settings)
        await old.open([0])
        await old.commit(0, [(scores, b"c1", b"old-committed", 0)], next_offset=1)
        # A zombie in the middle of a batch: its transaction is open when the owner changes.
        zombie = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all",
            transactional_id=transactional_id(settings.app_id, settings.topic_transactions, 0))
        await zombie.start()
        await zombie.begin_transaction()
        await zombie.send_and_wait(scores, b"zombie-open", key=b"c2", partition=0)
        await new.open([0])
        with pytest.raises(FencedError, match="new owner"):
            await old.commit(0, [(scores, b"c3", b"old-after-fence", 0)], next_offset=2)
        assert 0 not in old.partitions
        await new.commit(0, [(scores, b"c2", b"new-committed", 0)], next_offset=2)
        await zombie.stop()
        await new.close()
        await old.close()

    asyncio.run(run())
    seen = asyncio.run(committed_values(settings, 0, expected=2))
    assert seen == [b"old-committed", b"new-committed"]
    assert group_offset(settings, 0) == 2


def test_outputs_and_offsets_of_a_failed_batch_are_never_visible(settings: Settings) -> None:
    ensure_topics(settings)
    scores = settings.topic_scores

    async def run() -> None:
        out = outputs(settings)
        await out.open([1])
        await out.commit(1, [(scores, b"a", b"first", 1)], next_offset=5)
        # The broker refuses a record over its 1 MB limit: the whole batch is aborted.
        bad = [(scores, b"b", b"never", 1), (scores, b"b", b"x" * 2_000_000, 1)]
        with pytest.raises(KafkaError) as failed:
            await out.commit(1, bad, next_offset=9)
        assert not isinstance(failed.value, FencedError)
        await out.commit(1, [(scores, b"c", b"second", 1)], next_offset=7)
        await out.close()

    asyncio.run(run())
    seen = asyncio.run(committed_values(settings, 1, expected=2))
    assert seen == [b"first", b"second"]
    assert group_offset(settings, 1) == 7
