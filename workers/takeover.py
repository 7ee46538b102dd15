"""What a worker's predecessor already wrote for a partition, so a takeover never repeats it.

A worker that dies after writing a batch's outputs but before committing its offsets leaves
those records to be consumed again by whoever takes the partition over. Each output (score or
dead letter) goes to the same partition number as its input and names the input's offset, so
the new owner reads the tail of those output partitions once, before its first batch, and
skips the input records that already have an output. Outputs of one input partition are
written in offset order by one owner at a time, so reading backwards from the end can stop at
the first output older than the first offset to be processed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from fraudstream.settings import Settings

logger = logging.getLogger(__name__)

#: Records read per step backwards from the end of an output partition.
CHUNK = 4096
#: Polls in a row that return nothing and leave the read position where it was before a read
#: gives up (each waits up to 200 ms).
STALLED_POLLS = 50
#: Longest wait for the metadata of the topics a reader will read, at its start.
KNOW_TIMEOUT_S = 2.0


class ShortRead(RuntimeError):
    """A range could not be read to its end: the records it would hand over are incomplete,
    and a batch built on them must not be acknowledged."""

    def __init__(self, topic: str, partition: int, position: int, stop: int) -> None:
        super().__init__(f"read of {topic}[{partition}] stopped at offset {position} before "
                         f"{stop}: Kafka handed over nothing for {STALLED_POLLS} polls")
        self.topic, self.partition, self.position, self.stop = topic, partition, position, stop


class TakeoverScan:
    """Finds input offsets of one partition that already have an output record."""

    def __init__(self, bootstrap: Settings | str, output_topics: list[str],
                 reads: list[str] | None = None) -> None:
        #: The settings (they carry every connection option), or a bootstrap string.
        self.bootstrap = bootstrap
        self.output_topics = output_topics
        #: Topics read besides the outputs (log starts and ends, ranges): known from the start.
        self.reads = reads or []
        self._consumer: Any = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Connect (once; concurrent callers wait for the same connection) and learn where
        the partitions of the topics it will read are.

        aiokafka answers an offset request for a topic it has no metadata for by refreshing
        the metadata and retrying after ``retry_backoff_ms`` (100 ms): the first batch of a
        new consumer group asks for its partitions' log starts, and it started 136-138 ms after
        its first record instead of 27-34 ms (measured 2026-12-03, two workers at 1,000 tx/s).
        That wait is taken here, before any batch.
        """
        from aiokafka import TopicPartition
        from aiokafka.errors import KafkaError

        from fraudstream import kafka_clients

        async with self._starting:
            if self._consumer is not None:
                return
            consumer = kafka_clients.aio_consumer(
                self.bootstrap, enable_auto_commit=False,
                client_id="fraudstream-takeover", isolation_level="read_committed",
                max_partition_fetch_bytes=4_194_304, fetch_max_wait_ms=20)
            await consumer.start()
            self._consumer = consumer
            topics = sorted({*self.output_topics, *self.reads})
            try:
                async with asyncio.timeout(KNOW_TIMEOUT_S):
                    await consumer.beginning_offsets([TopicPartition(t, 0) for t in topics])
            except (KafkaError, TimeoutError) as exc:  # a first read learns it then
                logger.warning("reader started without the metadata of topics=%s error=%r",
                               topics, exc)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def emitted(self, partition: int, from_offset: int) -> set[int]:
        """Input offsets >= ``from_offset`` of ``partition`` that some output already names."""
        if self._consumer is None:
            await self.start()
        found: set[int] = set()
        for topic in self.output_topics:
            found |= await self._scan(topic, partition, from_offset)
        return found

    async def _scan(self, topic: str, partition: int, from_offset: int) -> set[int]:
        from aiokafka import TopicPartition

        consumer = self._consumer
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        low = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        found: set[int] = set()
        stop = end
        while stop > low:
            start = max(stop - CHUNK, low)
            oldest = await self._read(tp, start, stop, from_offset, found)
            if oldest is not None and oldest < from_offset:
                break
            stop = start
        return found

    async def log_start(self, topic: str, partition: int) -> int:
        """The first offset still in one partition (its log start)."""
        from aiokafka import TopicPartition

        if self._consumer is None:
            await self.start()
        tp = TopicPartition(topic, partition)
        return int((await self._consumer.beginning_offsets([tp]))[tp])

    async def log_end(self, topic: str, partition: int) -> int:
        """The offset after the last entry of one partition (its end, markers included)."""
        return (await self.log_ends(topic, [partition]))[partition]

    async def log_ends(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """``log_end`` of several partitions of ``topic``, in one request per broker."""
        from aiokafka import TopicPartition

        if self._consumer is None:
            await self.start()
        ends = await self._consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: int(end) for tp, end in ends.items()}

    async def records(self, topic: str, partition: int, start: int, stop: int) -> list[Any]:
        """The records at offsets [start, stop) of one partition, in offset order (offsets
        holding no record to read committed are absent); ``ShortRead`` when the read cannot
        reach ``stop``."""
        from aiokafka import TopicPartition

        if self._consumer is None:
            await self.start()
        tp = TopicPartition(topic, partition)
        self._consumer.assign([tp])
        found: list[Any] = []
        async for chunk in self._chunks(tp, start, stop):
            found.extend(chunk)
        return found

    async def _read(self, tp: Any, start: int, stop: int, from_offset: int,
                    found: set[int]) -> int | None:
        """Read [start, stop) of ``tp``; add named offsets >= from_offset; return the oldest."""
        oldest: int | None = None
        async for chunk in self._chunks(tp, start, stop):
            for rec in chunk:
                named = _source_offset(rec.value)
                if named is None:
                    continue
                oldest = named if oldest is None else min(oldest, named)
                if named >= from_offset:
                    found.add(named)
        return oldest

    async def _chunks(self, tp: Any, start: int, stop: int) -> AsyncIterator[list[Any]]:
        """The records of [start, stop) of the assigned ``tp``, as fetched.

        Offsets without a record (transaction markers, aborted or compacted records) are
        passed over: the read ends when the position reaches ``stop``. Raises ``ShortRead``
        when the position stops moving short of ``stop``.
        """
        consumer = self._consumer
        consumer.seek(tp, start)
        position = start
        stalled = 0
        while position < stop:
            batches = await consumer.getmany(tp, timeout_ms=200, max_records=CHUNK)
            records = batches.get(tp, [])
            if not records:
                moved = await consumer.position(tp)
                stalled = 0 if moved > position else stalled + 1
                position = moved
                if position < stop and stalled > STALLED_POLLS:
                    raise ShortRead(tp.topic, tp.partition, position, stop)
                continue
            stalled = 0
            chunk = [rec for rec in records if rec.offset < stop]
            if chunk:
                yield chunk
            if len(chunk) < len(records):
                return
            position = records[-1].offset + 1


def _source_offset(value: bytes | None) -> int | None:
    try:
        body = orjson.loads(value or b"")
        offset = body.get("offset") if isinstance(body, dict) else None
    except orjson.JSONDecodeError:
        return None
    return offset if isinstance(offset, int) and offset >= 0 else None
