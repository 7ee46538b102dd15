"""Getting records into and out of Kafka from the command line: paced producing and tailing."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

logger = logging.getLogger(__name__)


@dataclass
class ProduceStats:
    """Counters of a paced produce run, updated as it goes (for progress displays)."""

    sent: int = 0
    labels_sent: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class Outgoing:
    """One transaction to send, and optionally the label to publish ``label_delay_s`` later."""

    key: bytes | None
    value: bytes
    label: bytes | None = None


def new_producer(bootstrap: str, linger_ms: int = 5) -> AIOKafkaProducer:
    """An idempotent, batching producer (acks=all), not yet started."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all",
                            enable_idempotence=True, max_batch_size=262_144,
                            request_timeout_ms=30_000, client_id="fraudstream-producer")


async def produce_paced(producer: AIOKafkaProducer, records: Iterable[Outgoing], *,
                        topic: str, labels_topic: str, rate: float, label_delay_s: float,
                        stats: ProduceStats | None = None,
                        should_stop: Callable[[], bool] = lambda: False) -> ProduceStats:
    """Send ``records`` at ``rate`` per second (0 = as fast as possible); labels follow later.

    Pacing is done in 10 ms slices so high rates stay smooth; every send is awaited before
    returning, so a completed run means Kafka acknowledged every record.
    """
    stats = stats or ProduceStats()
    pending_labels: collections.deque[tuple[float, bytes | None, bytes]] = collections.deque()
    inflight: collections.deque[asyncio.Future[object]] = collections.deque()
    start = time.monotonic()
    slice_s = 0.01

    async def flush_labels(now: float, force: bool = False) -> None:
        while pending_labels and (force or pending_labels[0][0] <= now):
            _due, key, label = pending_labels.popleft()
            inflight.append(await producer.send(labels_topic, label, key=key))
            stats.labels_sent += 1

    for rec in records:
        if should_stop():
            break
        inflight.append(await producer.send(topic, rec.value, key=rec.key))
        stats.sent += 1
        now = time.monotonic()
        if rec.label is not None:
            pending_labels.append((now + label_delay_s, rec.key, rec.label))
        while len(inflight) > 20_000:
            await inflight.popleft()
        if rate > 0 and stats.sent % max(1, int(rate * slice_s)) == 0:
            ahead = start + stats.sent / rate - now
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
        await inflight.popleft()
    return stats


async def consume(bootstrap: str, topics: list[str], *, from_beginning: bool = True,
                  group_id: str | None = None, idle_timeout_s: float | None = None,
                  isolation_level: str = "read_committed") -> AsyncIterator[tuple[str, bytes | None,
                                                                                bytes | None, int]]:
    """Yield (topic, key, value, timestamp_ms) from ``topics``; stop after ``idle_timeout_s``."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=group_id,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=group_id is not None, isolation_level=isolation_level,
        client_id="fraudstream-reader")
    await consumer.start()
    try:
        last = time.monotonic()
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            if not batches:
                if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                    return
                continue
            last = time.monotonic()
            for tp, messages in batches.items():
                for m in messages:
                    yield tp.topic, m.key, m.value, m.timestamp
    finally:
        await consumer.stop()
