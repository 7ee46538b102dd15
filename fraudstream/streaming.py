"""Getting records into and out of Kafka from the command line: paced producing and tailing."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import heapq
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fraudstream import kafka_clients

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from fraudstream.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class ProduceStats:
    """Counters of a paced produce run, updated as it goes (for progress displays)."""

    sent: int = 0
    labels_sent: int = 0
    #: Sends Kafka never acknowledged (only counted when ``tolerate_failures`` is set).
    failed: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class Outgoing:
    """One transaction to send, and optionally the label to publish later.

    ``ts`` is the transaction's event time (unix seconds), when known: labels published in
    event time (``interleave_labels``) fall due by it.
    """

    key: bytes | None
    value: bytes
    label: bytes | None = None
    ts: int | None = None


@dataclass(frozen=True)
class DueLabel:
    """A label whose time has come: publish it to the labels topic now."""

    key: bytes | None
    value: bytes


def interleave_labels(records: Iterable[Outgoing], delay_s: float
                      ) -> Iterator[Outgoing | DueLabel]:
    """The transactions of ``records`` (their labels stripped) with each label placed just
    before the first transaction whose event time is at least the labelled transaction's time
    plus ``delay_s``, as a live system with that label delay receives them; labels that never
    fall due within the stream come last. A label without an event time follows its
    transaction at once.
    """
    pending: list[tuple[float, int, bytes | None, bytes]] = []
    for seq, rec in enumerate(records):
        if rec.ts is not None:
            while pending and pending[0][0] <= rec.ts:
                _due, _seq, key, label = heapq.heappop(pending)
                yield DueLabel(key, label)
        yield dataclasses.replace(rec, label=None) if rec.label is not None else rec
        if rec.label is not None:
            if rec.ts is None:
                yield DueLabel(rec.key, rec.label)
            else:
                heapq.heappush(pending, (rec.ts + delay_s, seq, rec.key, rec.label))
    while pending:
        _due, _seq, key, label = heapq.heappop(pending)
        yield DueLabel(key, label)


def new_producer(target: Settings | str, linger_ms: int = 5,
                 **overrides: Any) -> AIOKafkaProducer:
    """An idempotent, batching producer (acks=all), not yet started.

    ``target``: the settings (they carry every connection option), or a bootstrap string;
    ``overrides``: more aiokafka options (a transactional id, another client id).
    """
    options: dict[str, Any] = {"linger_ms": linger_ms, "acks": "all",
                               "enable_idempotence": True, "max_batch_size": 262_144,
                               "request_timeout_ms": 30_000,
                               "client_id": "fraudstream-producer", **overrides}
    return kafka_clients.aio_producer(target, **options)


async def produce_paced(producer: AIOKafkaProducer, records: Iterable[Outgoing], *,
                        topic: str, labels_topic: str, rate: float, label_delay_s: float,
                        stats: ProduceStats | None = None,
                        should_stop: Callable[[], bool] = lambda: False,
                        on_delivered: Callable[[Outgoing, int, int], None] | None = None,
                        tolerate_failures: bool = False,
                        label_event_delay_s: float | None = None) -> ProduceStats:
    """Send ``records`` at ``rate`` per second (0 = as fast as possible); labels follow later.

    Labels follow ``label_delay_s`` seconds of wall-clock time later, or, with
    ``label_event_delay_s``, when the stream's event time passes the labelled transaction's
    time plus that delay (``interleave_labels``; ``label_delay_s`` is then unused).
    Pacing is done in 10 ms slices so high rates stay smooth; every send is awaited before
    returning, so a completed run means Kafka acknowledged every record. ``on_delivered``
    gets each acknowledged transaction record with its partition and offset. With
    ``tolerate_failures`` (chaos runs: brokers go away), a send Kafka never acknowledges is
    counted in ``stats.failed`` instead of raising; such a record was never produced.
    """
    from aiokafka.errors import KafkaError

    stats = stats or ProduceStats()
    stream: Iterable[Outgoing | DueLabel] = (
        records if label_event_delay_s is None
        else interleave_labels(records, label_event_delay_s))
    pending_labels: collections.deque[tuple[float, bytes | None, bytes]] = collections.deque()
    inflight: collections.deque[tuple[Outgoing | None, asyncio.Future[Any]]] = (
        collections.deque())

    async def settle_oldest() -> None:
        rec, fut = inflight.popleft()
        try:
            metadata = await fut
        except KafkaError as exc:
            if not tolerate_failures:
                raise
            stats.failed += 1
            logger.debug("send failed error=%r", exc)
            return
        if rec is not None and on_delivered is not None:
            on_delivered(rec, metadata.partition, metadata.offset)
    start = time.monotonic()
    slice_s = 0.01
    #: Paced by this call's own count: ``stats`` may carry an earlier call's (load phases).
    sent_here = 0

    async def flush_labels(now: float, force: bool = False) -> None:
        while pending_labels and (force or pending_labels[0][0] <= now):
            _due, key, label = pending_labels.popleft()
            inflight.append((None, await producer.send(labels_topic, label, key=key)))
            stats.labels_sent += 1

    for rec in stream:
        if should_stop():
            break
        if isinstance(rec, DueLabel):
            inflight.append((None, await producer.send(labels_topic, rec.value, key=rec.key)))
            stats.labels_sent += 1
            continue
        try:
            inflight.append((rec, await producer.send(topic, rec.value, key=rec.key)))
        except KafkaError:
            if not tolerate_failures:
                raise
            stats.failed += 1
            await asyncio.sleep(0.01)
            continue
        stats.sent += 1
        sent_here += 1
        now = time.monotonic()
        if rec.label is not None:
            pending_labels.append((now + label_delay_s, rec.key, rec.label))
        while len(inflight) > 20_000:
            await settle_oldest()
        if rate > 0 and sent_here % max(1, int(rate * slice_s)) == 0:
            ahead = start + sent_here / rate - now
            if ahead > 0:
                await asyncio.sleep(ahead)
            await flush_labels(time.monotonic())
        elif stats.sent % 1000 == 0:
            await flush_labels(now)
            await asyncio.sleep(0)
    # Wait out the label delay so every label is published, unless asked to stop.
    while pending_labels and not should_stop():
        await flush_labels(time.monotonic())
        await asyncio.sleep(0.05)
    await flush_labels(time.monotonic(), force=True)
    while inflight:
        await settle_oldest()
    return stats


class TopicReader:
    """Reads whole topics by explicit assignment (no consumer group), from their start or end.

    ``start()`` fixes the starting positions, so records produced after it returns are never
    missed, whatever happens later.
    """

    def __init__(self, target: Settings | str, topics: list[str], *, from_beginning: bool = True,
                 isolation_level: str = "read_committed") -> None:
        #: The settings (they carry every connection option), or a bootstrap string.
        self.target = target
        self.topics = topics
        self.from_beginning = from_beginning
        self.isolation_level = isolation_level
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        from aiokafka import TopicPartition

        consumer = kafka_clients.aio_consumer(self.target, enable_auto_commit=False,
                                              isolation_level=self.isolation_level,
                                              client_id="fraudstream-reader",
                                              max_partition_fetch_bytes=4_194_304)
        try:
            await kafka_clients.start_bounded(consumer)
            partitions = []
            for topic in self.topics:
                ids = consumer.partitions_for_topic(topic)
                if not ids:
                    # aiokafka's private client (checked at worker start: workers.faust_bridge).
                    await consumer._client.force_metadata_update()
                    ids = consumer.partitions_for_topic(topic) or set()
                partitions += [TopicPartition(topic, i) for i in sorted(ids)]
            consumer.assign(partitions)
            if self.from_beginning:
                await consumer.seek_to_beginning(*partitions)
            else:
                ends = await consumer.end_offsets(partitions)
                for tp, off in ends.items():
                    consumer.seek(tp, off)
        except BaseException:
            # Without this a failed start (Kafka down) leaves an unclosed client behind.
            await consumer.stop()
            raise
        self._consumer = consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """The started consumer: its assignment, and questions to Kafka (the API's probe)."""
        assert self._consumer is not None, "call start() first"
        return self._consumer

    async def __aenter__(self) -> TopicReader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def at_end(self) -> bool:
        """Whether every assigned partition has been read up to its end.

        The end is the last stable offset when reading committed: records of transactions
        still open are not counted as readable yet.
        """
        assert self._consumer is not None, "call start() first"
        assigned = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(assigned)
        for tp in assigned:
            if await self._consumer.position(tp) < ends[tp]:
                return False
        return True

    async def read_until_settled(self, observe: Callable[[str, bytes | None, bytes | None, int],
                                                          None],
                                 settle_s: float, timeout_s: float = 60.0) -> bool:
        """Hand every record to ``observe`` (topic, key, value, timestamp_ms) until every
        partition is at its end and nothing new came for ``settle_s``; False when that did not
        happen within ``timeout_s``.

        Stopping as soon as some count balances would miss a late duplicate; stopping on a quiet
        poll alone would miss records still being fetched.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        quiet_since = loop.time()
        while loop.time() < deadline:
            records = await self.poll(0.5)
            for record in records:
                observe(*record)
            if records or not await self.at_end():
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= settle_s:
                return True
        logger.warning("topics %s did not settle within %.0fs", self.topics, timeout_s)
        return False

    async def poll(self, timeout_s: float = 0.2) -> list[tuple[str, bytes | None, bytes | None,
                                                                int]]:
        """Whatever arrived within ``timeout_s``: (topic, key, value, timestamp_ms) tuples."""
        assert self._consumer is not None, "call start() first"
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000),
                                               max_records=10_000)
        return [(tp.topic, m.key, m.value, m.timestamp)
                for tp, messages in batches.items() for m in messages]


async def consume(target: Settings | str, topics: list[str], *, from_beginning: bool = True,
                  idle_timeout_s: float | None = None) -> AsyncIterator[
                      tuple[str, bytes | None, bytes | None, int]]:
    """Yield (topic, key, value, timestamp_ms) from ``topics``; stop after ``idle_timeout_s``."""
    async with TopicReader(target, topics, from_beginning=from_beginning) as reader:
        last = time.monotonic()
        while True:
            records = await reader.poll()
            if not records:
                if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                    return
                continue
            last = time.monotonic()
            for record in records:
                yield record
