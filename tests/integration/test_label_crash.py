"""Labels are counted exactly once through a crash: the label-crash test, against real Kafka.

Two workers; about 500 labels a second, all for one merchant (their cards spread them over
every labels partition, so both workers route some). The worker that applies that merchant's
labels (it owns the merchant's merchant-labels partition) is SIGKILLed in mid-stream; the
other one takes its partitions when its session expires and goes on from the committed
offsets. The merchants changelog, read committed (last value per key, as every worker
restores it), must then count exactly the labels sent, and exactly their frauds.

Under ``exactly_once`` both hops of the label path are transactions fenced per input partition
(workers.merchant_labels). The control, ``at_least_once``, runs the same sequence and must
miscount: labels in flight at the kill are routed and applied again. That is what makes the
first case a test that can fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import signal
import threading
import time
import urllib.request
import uuid

import orjson
import pytest

from features import MerchantState
from fraudstream.settings import Settings
from fraudstream.streaming import TopicReader, new_producer
from tests.conftest import wait_until
from tests.stack_fixtures import running_pool
from workers.output import key_partition

pytestmark = pytest.mark.integration

RATE = 500
#: Labels are sent for this long; the owner is killed after ``KILL_AFTER_S``.
SEND_S = 14.0
KILL_AFTER_S = 5.0
FRAUD_EVERY = 7
#: Labels waiting for the worker in the backlog test (several batches of 1000).
BACKLOG = 6000
#: Counts unchanged this long are final, even if an offset is still uncommitted.
STABLE_S = 15.0


def partitions_of(port: int) -> list[int]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as resp:
            return list(json.loads(resp.read())["partitions"])
    except OSError:
        return []


def applied(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('fraudstream_labels_applied_total{outcome="applied"}'))


def label(merchant: str, i: int, now: float) -> tuple[bytes, bytes]:
    """The i-th label: a card of 64, a distinct second a day ago, every 7th a fraud."""
    card = f"card-{i % 64}"
    at = dt.datetime.fromtimestamp(now - 86_400 + i, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"transaction_id": f"t-{i}", "card_id": card, "merchant_id": merchant,
            "is_fraud": int(i % FRAUD_EVERY == 0), "timestamp": at, "reported_at": at}
    return card.encode(), orjson.dumps(body)


async def send_labels(settings: Settings, merchant: str, stop: threading.Event,
                      seconds: float = SEND_S, rate: int = RATE) -> int:
    """Send labels at ``rate`` a second for ``seconds`` (or until ``stop``); return how
    many."""
    producer = new_producer(settings)
    await producer.start()
    sent, now, started = 0, time.time(), time.monotonic()
    try:
        while time.monotonic() - started < seconds and not stop.is_set():
            due = min(int((time.monotonic() - started) * rate), int(seconds * rate))
            for i in range(sent, due):
                key, value = label(merchant, i, now)
                await producer.send(settings.topic_labels, value, key=key)
            sent = max(sent, due)
            await asyncio.sleep(0.02)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def merchant_counts(settings: Settings, merchant: str) -> tuple[int, int] | None:
    """(labels, frauds) of ``merchant`` in the merchants changelog, read committed, last value
    per key (None: not there)."""
    topic = f"{settings.app_id}-merchants-changelog"
    last: bytes | None = None
    async with TopicReader(settings, [topic]) as reader:
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
    return sum(n for _at, n, _f in entries), sum(f for _at, _n, f in entries)


async def drained(settings: Settings) -> bool:
    """Whether the group has committed every record of the labels and merchant-labels
    topics: under exactly-once in the transactions that wrote their outputs, otherwise after
    Faust flushed them. (Committed offsets stop before a trailing transaction marker: they
    are compared with the last record, not the end.)"""
    from aiokafka import TopicPartition

    from fraudstream import kafka_clients
    from workers.changelog_tail import last_record_offsets

    tps = [TopicPartition(topic, p) for topic in (settings.topic_labels,
                                                  f"{settings.app_id}-merchant-labels")
           for p in range(settings.partitions)]
    consumer = kafka_clients.aio_consumer(settings, group_id=settings.app_id,
                                          enable_auto_commit=False)
    await consumer.start()
    try:
        last = await last_record_offsets(settings, await consumer.end_offsets(tps))
        for tp in tps:
            committed = await consumer.committed(tp)
            if last[tp] >= 0 and (committed is None or committed <= last[tp]):
                return False
        return True
    finally:
        await consumer.stop()


def settle(settings: Settings, merchant: str) -> tuple[int, int] | None:
    """The merchant's counts once the label path has committed every label sent, or (Faust
    committing at least once may leave an offset uncommitted for long) once they have not
    changed for ``STABLE_S``."""
    seen: list[tuple[float, tuple[int, int] | None]] = []

    def done() -> bool:
        if asyncio.run(drained(settings)):
            return True
        now, counts = time.monotonic(), asyncio.run(merchant_counts(settings, merchant))
        if not seen or seen[-1][1] != counts:
            seen.append((now, counts))
        return counts is not None and now - seen[-1][0] > STABLE_S

    wait_until(done, 90, "the workers did not commit every label", interval=1.0)
    return asyncio.run(merchant_counts(settings, merchant))


def test_a_backlog_for_one_merchant_is_counted_exactly_without_faults(
        settings: Settings) -> None:
    """No fault at all: one worker starts on a backlog of labels for one merchant, so it
    applies them in batches back to back. A worker that built a merchant's next state on its
    table copy would lose labels whenever the copy still held the echo of its own earlier
    write (a global table reads its own changelog back)."""
    from workers.topics import ensure_topics

    merchant = f"M-backlog-{uuid.uuid4().hex[:6]}"
    ensure_topics(settings)
    sent = asyncio.run(send_labels(settings, merchant, threading.Event(), rate=BACKLOG,
                                   seconds=1.0))
    expected = (sent, len(range(0, sent, FRAUD_EVERY)))
    with running_pool(settings, 1) as pool:
        counted = settle(settings, merchant)
        by_worker = applied(pool.workers[0].port)
    # Applied as often as sent yet counted less: states built on stale table values.
    print(f"\nLABEL BACKLOG: sent {expected}, applied by the worker {by_worker:.0f}, "
          f"counted {counted}")
    assert counted == expected


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_labels_are_counted_once_when_their_merchant_owner_is_killed(
        settings: Settings, guarantee: str) -> None:
    s = dataclasses.replace(settings, processing_guarantee=guarantee)
    merchant = f"M-crash-{uuid.uuid4().hex[:6]}"
    partition = key_partition(merchant.encode(), s.partitions)
    stop, sent = threading.Event(), []
    traffic = threading.Thread(
        target=lambda: sent.append(asyncio.run(send_labels(s, merchant, stop))), daemon=True)
    with running_pool(s, 2) as pool:
        wait_until(lambda: all(partitions_of(w.port) for w in pool.workers), 60,
                   "the two workers did not share the partitions")
        # The topics are co-partitioned: the owner of transactions partition p owns
        # merchant-labels partition p too (checked below by what it applied).
        owner = next(w for w in pool.workers if partition in partitions_of(w.port))
        heir = next(w for w in pool.workers if w is not owner)
        traffic.start()
        try:
            time.sleep(KILL_AFTER_S)
            before_kill = applied(owner.port)
            owner.signal(signal.SIGKILL)
            wait_until(lambda: len(partitions_of(heir.port)) == s.partitions, 60,
                       "the survivor did not take the killed worker's partitions")
        finally:
            traffic.join(SEND_S + 30)
            stop.set()
        assert sent, "the producer failed"
        expected = (sent[0], len(range(0, sent[0], FRAUD_EVERY)))
        counted = settle(s, merchant)
        by_heir = applied(heir.port)
    print(f"\nLABEL-CRASH {guarantee}: sent {expected[0]} labels ({expected[1]} frauds), "
          f"counted {counted}, applied by the killed owner before the kill {before_kill:.0f}, "
          f"by the survivor {by_heir:.0f}")
    assert before_kill > 0, "the killed worker applied no label: it did not own the merchant"
    if guarantee == "exactly_once":
        assert counted == expected
    else:
        assert counted != expected, \
            "without transactions, labels in flight at the kill should have been miscounted"
