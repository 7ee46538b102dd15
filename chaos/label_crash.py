"""The label-crash scenario's load, fault and judge: labels for one merchant, its owner killed.

About 500 labels a second, all for one merchant (their cards spread them over every labels
partition), run alongside the transactions. The fault SIGKILLs the worker that applies that
merchant's labels: the owner of the merchant's partition of the merchant-labels topic (the
topics are co-partitioned, so it is the owner of the same transactions partition). The run
passes when the merchants changelog, read committed with the last value per key (what every
worker restores), counts exactly the labels sent and exactly their frauds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from fraudstream.contracts import Label
from fraudstream.settings import Settings
from fraudstream.streaming import TopicReader, new_producer
from fraudstream.workers.output import key_partition

if TYPE_CHECKING:
    from fraudstream.chaos.faults import FaultContext

logger = logging.getLogger(__name__)

#: Labels a second for the one merchant.
RATE = 500
#: One label in this many is a fraud.
FRAUD_EVERY = 7
#: Cards the labels are spread over (and so over the labels partitions).
CARDS = 64


@dataclass(frozen=True)
class LabelCounts:
    """How many labels (and frauds among them) were sent or counted for the merchant."""

    labels: int
    frauds: int


def merchant_of(settings: Settings) -> str:
    """The run's one merchant (named after the run, so runs never share it)."""
    return f"M-label-crash-{settings.app_id}"


def label(merchant: str, i: int, now_s: float) -> tuple[bytes, bytes]:
    """The i-th label (key, value): its own card of ``CARDS``, its own second a day ago."""
    card = f"card-{i % CARDS}"
    at = dt.datetime.fromtimestamp(now_s - 86_400 + i, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body: Label = {"transaction_id": f"{merchant}-{i}", "card_id": card,
                   "merchant_id": merchant, "is_fraud": 1 if i % FRAUD_EVERY == 0 else 0,
                   "timestamp": at, "reported_at": at}
    return card.encode(), orjson.dumps(body)


def sent_counts(sent: int) -> LabelCounts:
    """What ``sent`` labels of ``label`` hold."""
    return LabelCounts(sent, len(range(0, sent, FRAUD_EVERY)))


async def send_labels(settings: Settings, merchant: str, seconds: float,
                      rate: float = RATE) -> LabelCounts:
    """Send labels for ``merchant`` at ``rate`` a second for ``seconds``; what was sent."""
    producer = new_producer(settings)
    await producer.start()
    total = int(seconds * rate)
    sent, now, started = 0, time.time(), time.monotonic()
    try:
        while sent < total:
            due = min(int((time.monotonic() - started) * rate), total)
            for i in range(sent, due):
                key, value = label(merchant, i, now)
                await producer.send(settings.topic_labels, value, key=key)
            sent = max(sent, due)
            await asyncio.sleep(0.02)
        await producer.flush()
    finally:
        await producer.stop()
    return sent_counts(sent)


async def merchant_counts(settings: Settings, merchant: str) -> LabelCounts | None:
    """The merchant's labels and frauds in the merchants changelog, read committed, last
    value per key (None: not there)."""
    from fraudstream.features import MerchantState

    last: bytes | None = None
    async with TopicReader(settings, [f"{settings.app_id}-merchants-changelog"]) as reader:
        while True:
            for _topic, key, value, _ts in await reader.poll(0.3):
                if key == merchant.encode():
                    last = value
            if await reader.at_end():
                break
    if last is None:
        return None
    state = MerchantState.from_wire(orjson.loads(last))
    entries = [e for tier in state.levels for e in tier.entries()]
    return LabelCounts(sum(n for _at, n, _f in entries), sum(f for _at, _n, f in entries))


async def label_path_drained(settings: Settings) -> bool:
    """Whether the group has committed every record of the labels topic, and then every
    record of the merchant-labels topic: under exactly-once in the transactions that wrote
    their outputs, otherwise after Faust flushed them. (Committed offsets stop before a
    trailing transaction marker: they are compared with the last record, not the end.)

    Hop by hop, upstream first: the merchant-labels topic's end is read only once every label
    is known routed, so it holds what the last routing wrote. Read both ends at once and a
    routing that commits between that read and the check counts its labels as done while its
    merchant-labels record, past the end read, waits to be applied, and the counts are read
    short of that batch (a CI run of the label-crash test counted 6,585 of 7,000 labels while
    the survivor was still working through its backlog).
    """
    from aiokafka import TopicPartition

    from fraudstream import kafka_clients
    from fraudstream.workers.changelog_tail import last_record_offsets
    from fraudstream.workers.topics import merchant_labels_topic

    consumer = kafka_clients.aio_consumer(settings, group_id=settings.app_id,
                                          enable_auto_commit=False)
    await consumer.start()
    try:
        for topic in (settings.topic_labels, merchant_labels_topic(settings)):
            tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
            last = await last_record_offsets(settings, await consumer.end_offsets(tps))
            for tp in tps:
                committed = await consumer.committed(tp)
                if last[tp] >= 0 and (committed is None or committed <= last[tp]):
                    return False
        return True
    finally:
        await consumer.stop()


async def settled_counts(settings: Settings, merchant: str, timeout_s: float = 90.0,
                         stable_s: float = 15.0) -> LabelCounts | None:
    """The merchant's counts once the label path has committed every label, or (Faust
    committing at least once may leave an offset uncommitted for long) once they have not
    changed for ``stable_s``; None when neither happened within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: tuple[float, LabelCounts | None] | None = None
    while time.monotonic() < deadline:
        if await label_path_drained(settings):
            return await merchant_counts(settings, merchant)
        counts = await merchant_counts(settings, merchant)
        if last is None or last[1] != counts:
            last = (time.monotonic(), counts)
        elif counts is not None and time.monotonic() - last[0] > stable_s:
            return counts
        await asyncio.sleep(1.0)
    return None


def kill_merchant_owner(ctx: FaultContext) -> None:
    """SIGKILL the active worker that owns the run's merchant's partition."""
    from fraudstream.chaos.faults import FaultUnavailable

    partition = key_partition(merchant_of(ctx.settings).encode(), ctx.settings.partitions)
    for slot in ctx.workers().slots:
        ready = slot.worker.readiness() or {}
        if partition in ready.get("partitions", []) and slot.worker.proc is not None:
            ctx.notes["victim_pid"] = slot.worker.proc.pid
            logger.warning("chaos: SIGKILL to the owner of merchant partition=%d pid=%s",
                           partition, slot.worker.proc.pid)
            slot.worker.signal(signal.SIGKILL)
            return
    raise FaultUnavailable(f"no active worker said it owns partition {partition}")


def problems(sent: LabelCounts | None, counted: LabelCounts | None) -> list[str]:
    """What is wrong with the merchant's counts (nothing when they equal what was sent)."""
    if sent is None:
        return ["the labels were not sent"]
    if counted is None:
        return [f"the merchant's counts never settled ({sent.labels} labels sent)"]
    if counted != sent:
        return [f"the merchant counts {counted.labels} labels ({counted.frauds} frauds); "
                f"{sent.labels} ({sent.frauds}) were sent"]
    return []
