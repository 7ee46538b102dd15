"""KafkaBatchSink hands the producer complete batches, which aiokafka's sender takes at once."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder, MessageBatch
from aiokafka.structs import TopicPartition

from fraudstream.workers.output import KafkaBatchSink

LINGER_S = 0.005


class RecordingProducer:
    """Real aiokafka batch builders; notes whether each batch was closed when sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, bool, int]] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16_384, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, partition: int) -> Any:
        self.sent.append((topic, partition, batch.closed(), batch.record_count()))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_every_batch_is_closed_before_it_is_sent() -> None:
    producer = RecordingProducer()
    sink = KafkaBatchSink(producer)
    for n in range(3):
        sink.add("scores", b"k%d" % n, b"s" * 10, 0)
    sink.add("cards-changelog", b"k", b"c" * 20_000, 1)  # more than one batch holds
    sink.add("cards-changelog", b"k", b"c" * 20_000, 1)
    asyncio.run(sink.flush())
    assert [(t, p, n) for t, p, _closed, n in producer.sent] == [
        ("scores", 0, 3), ("cards-changelog", 1, 1), ("cards-changelog", 1, 1)]
    assert all(closed for _t, _p, closed, _n in producer.sent)


def test_aiokafka_lets_an_open_batch_linger_and_sends_a_closed_one_at_once() -> None:
    """What the closing relies on (aiokafka's ``MessageBatch.remaining_linger``): an open
    batch waits up to ``linger_ms`` for more records, a closed one is ready now."""
    tp = TopicPartition("scores", 0)

    async def remaining(builder: BatchBuilder) -> float | None:
        # A MessageBatch makes its futures on the running loop.
        return MessageBatch(tp, builder, 30.0, LINGER_S).remaining_linger()

    builder = BatchBuilder(16_384, 0)
    builder.append(key=b"k", value=b"v", timestamp=None)
    waiting = asyncio.run(remaining(builder))
    assert waiting is not None and 0 < waiting <= LINGER_S
    builder.close()
    assert asyncio.run(remaining(builder)) is None
