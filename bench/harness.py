"""Throughput and latency, measured side by side in one run on the same data.

Each contender drains the same pre-loaded transactions and labels (one label per transaction,
its own copy of both topics) and is timed from its first output record to the last of its
scores and of its merchant states (Kafka timestamps): start-up is excluded, the labels' work is
not, and every contender is measured the same way. Latency is measured at fixed input rates, labels
following their transactions a second later, from the transaction's arrival in Kafka to its
score's arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

import numpy as np
import orjson

from fraudstream.contracts import Score
from fraudstream.feeds import outgoing
from fraudstream.ledger import quiet_collector, seen_now_ms
from fraudstream.monitoring.scraped_histograms import bucket_counts, quantile
from fraudstream.settings import Settings
from fraudstream.simulator import Dataset
from fraudstream.streaming import Outgoing, TopicReader, new_producer, produce_paced
from fraudstream.workers.pool import WorkerPool, WorkerStartError, settings_env
from fraudstream.workers.topics import (
    delete_run_topics,
    ensure_topics,
    merchants_changelog_spec,
)

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

#: Seconds the workers run idle before a latency run starts.
WARM_UP_S = 5.0
#: Longest a contender may take to start reading its partitions.
READY_TIMEOUT_S = 120.0
#: A broker that has used less CPU than this since it started is cold: its JIT has not
#: compiled the paths the runs use. Measured 2026-12-04 (w): a broker just started had used
#: 5 CPU-seconds (and about 0.16 a second idle); in its first 40 s at 1,000 tx/s with two
#: workers its JIT compiled 6,600-6,800 methods in 21-26 CPU-seconds, and it took 85-111 % of
#: a core for about 20 s (40-55 % after), on a machine of two cores.
WARM_BROKER_CPU_S = 60.0
#: Seconds of the unreported run that warms a cold broker up.
BROKER_WARM_UP_RUN_S = 30.0
#: Seconds without a new merchant state after which a contender is done with the labels.
LABELS_QUIET_S = 3.0
#: Wall-clock seconds a label follows its transaction in the latency runs.
LABEL_DELAY_S = 1.0


class BenchError(RuntimeError):
    """A measurement that cannot be trusted (records missing): no figure is reported."""

    retriable = False


def machine_load() -> dict[str, float]:
    """The 1-minute load average and the core count, printed beside every figure: absolute
    speeds here differ about 2.5x between machines, so runs compare by ratio and load."""
    return {"load_avg_1m": round(os.getloadavg()[0], 2), "cores": float(os.cpu_count() or 0)}


class Started(Protocol):
    """A contender running on a run's topics."""

    def wait_ready(self, timeout: float) -> None:
        """Return once it reads its partitions (a record sent now is not kept waiting by its
        start-up); raise ``BenchError`` if it does not within ``timeout`` seconds."""

    def stop(self) -> None:
        ...

    def metrics_pages(self) -> list[str]:
        """The ``/metrics`` pages of its processes that export the workers' histograms (none
        for the raw loops)."""
        ...

    def assignments(self) -> list[tuple[int, ...] | None]:
        """Each process's transaction partitions now, None where it does not answer (empty
        for contenders outside a consumer group: the raw loops assign their own)."""
        ...


@dataclass
class Contender:
    """A way of scoring the stream: its name and how to start it.

    ``held``: its drain's records wait in an open Kafka transaction until it is ready (and a
    pool's group has settled), then appear at once (it reads committed); otherwise they are
    committed before it starts (the naive agent, which says nothing when it is ready).
    """

    name: str
    start: Callable[[Settings], Started]
    held: bool = True


@dataclass
class Measurement:
    name: str
    records: int
    seconds: float
    throughput: float
    latency_ms: dict[str, object] = field(default_factory=dict)
    #: Seconds from the first output to the last score (the drain's transactions alone).
    scores_seconds: float | None = None
    #: The machine's load when the measurement ended (``machine_load``).
    load: dict[str, float] = field(default_factory=machine_load)
    #: Whether its consumer group moved partitions during the drain (``moved_partitions``).
    rebalanced: bool = False


def fresh(settings: Settings, label: str) -> Settings:
    """Settings with topics and a consumer group of their own."""
    # Topic names allow ASCII letters, digits, '.', '_' and '-' only.
    tag = f"{re.sub(r'[^A-Za-z0-9._-]', '-', label)}-{uuid.uuid4().hex[:6]}"
    return dataclasses.replace(settings, app_id=f"bench-{tag}",
                               topic_transactions=f"bench-tx-{tag}",
                               topic_scores=f"bench-scores-{tag}", topic_dlq=f"bench-dlq-{tag}",
                               topic_labels=f"bench-labels-{tag}")


def discard(settings: Settings) -> list[str]:
    """Delete the topics of a run made with ``fresh`` (its own and Faust's): each contender
    meets a broker with the same topics. Left behind, a few benchmark runs' partitions (about
    450 of them) slowed every later run: two workers at 1,000 tx/s measured p99 276-303 ms
    before they were deleted, 191-242 ms after (2026-12-03)."""
    return delete_run_topics(settings, settings.app_id.removeprefix("bench-"),
                             client_id="fraudstream-bench")


class StartedPool:
    """Workers under a ``WorkerPool``: ready when each says so and all partitions are taken."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def wait_ready(self, timeout: float) -> None:
        try:
            self.pool.wait_ready(timeout)
        except WorkerStartError as exc:
            raise BenchError(str(exc)) from exc

    def stop(self) -> None:
        self.pool.stop()

    def metrics_pages(self) -> list[str]:
        # All or none: a split over the workers that answered would pass for the whole.
        pages = [worker.metrics_page() for worker in self.pool.workers]
        return [page for page in pages if page is not None] if None not in pages else []

    def assignments(self) -> list[tuple[int, ...] | None]:
        answers = [worker.readiness(timeout=0.5) for worker in self.pool.workers]
        return [tuple(a.get("partitions", ())) if a is not None else None for a in answers]


def start_pool(count: int, guarantee: str | None = None) -> Callable[[Settings], Started]:
    """``count`` workers; ``guarantee`` overrides the run's processing guarantee."""
    def start(settings: Settings) -> Started:
        if guarantee is not None:
            settings = dataclasses.replace(settings, processing_guarantee=guarantee)
        pool = WorkerPool(settings, count)
        pool.start()
        return StartedPool(pool)
    return start


#: The line a module contender prints once it reads its partitions (``bench.raw_loop``).
READY_LINE = b"contender ready"


class StartedModules:
    """``python -m module`` processes sharing a log; ready when each printed ``READY_LINE``."""

    def __init__(self, procs: list[subprocess.Popen[bytes]], log: IO[bytes], log_path: Path,
                 log_start: int) -> None:
        self.procs, self.log, self.log_path, self.log_start = procs, log, log_path, log_start

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as f:
                f.seek(self.log_start)
                if f.read().count(READY_LINE) >= len(self.procs):
                    return
            exited = [p.returncode for p in self.procs if p.poll() is not None]
            if exited:
                raise BenchError(f"a contender process exited ({exited[0]}) before it was "
                                 f"ready: see {self.log_path}")
            time.sleep(0.2)
        raise BenchError(f"not ready after {timeout:.0f}s: see {self.log_path}")

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.log.close()

    def metrics_pages(self) -> list[str]:
        return []

    def assignments(self) -> list[tuple[int, ...] | None]:
        return []


def start_module(module: str, *argvs: list[str]) -> Callable[[Settings], Started]:
    """``python -m module`` once per argument list in ``argvs``, all stopped together."""
    def start(settings: Settings) -> Started:
        log_path = settings.state_dir / "logs" / f"{module}.log"
        log = log_path.open("ab")
        log_start = log.tell()
        procs = [subprocess.Popen([sys.executable, "-m", module, *args],
                                  env=settings_env(settings), stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
                 for args in argvs]
        return StartedModules(procs, log, log_path, log_start)
    return start


#: Longest a drain's records may wait in their open transaction for the contender to start.
HOLD_TIMEOUT_MS = 300_000


async def preload(settings: Settings, records: list[Outgoing]) -> None:
    """``records`` and their labels written and committed at once."""
    held = HeldPreload(settings)
    try:
        await held.write(records)
        await held.release()
    finally:
        await held.close()


class HeldPreload:
    """A drain's records written inside one open Kafka transaction: contenders that read
    committed see none of them until ``release`` commits it, then all at once. A pool is
    thereby timed on a group that has formed, not across its forming (``settled_group``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None

    async def write(self, records: list[Outgoing]) -> None:
        """Every record sent and acknowledged, in a transaction left open."""
        self.producer = producer = new_producer(
            self.settings, linger_ms=20, transactional_id=f"{self.settings.app_id}-preload",
            transaction_timeout_ms=HOLD_TIMEOUT_MS, client_id="fraudstream-bench-preload")
        await producer.start()
        await producer.begin_transaction()
        await produce_paced(producer, records, topic=self.settings.topic_transactions,
                            labels_topic=self.settings.topic_labels, rate=0, label_delay_s=0)

    async def release(self) -> None:
        assert self.producer is not None, "write first"
        await self.producer.commit_transaction()

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()


#: Seconds a pool's partitions must stay where they are before its drain's records appear.
SETTLED_S = 1.5


def settled(history: list[list[tuple[int, ...] | None]], partitions: int,
            quiet_polls: int) -> bool:
    """Whether the last ``quiet_polls`` snapshots are one and the same settled assignment:
    every process answers and holds some partitions, none twice, all of them in all."""
    if len(history) < quiet_polls:
        return False
    last = history[-1]
    if any(snapshot != last for snapshot in history[-quiet_polls:]):
        return False
    if not last:  # contenders outside a consumer group
        return True
    held = [p for partitions_of in last if partitions_of for p in partitions_of]
    return (all(last) and len(held) == len(set(held)) == partitions)


def settled_group(started: Started, partitions: int, timeout: float,
                  say: Callable[[str], None], name: str) -> None:
    """Wait until the contender's group holds its partitions stably (``settled``); measured
    2026-12-04 (x) and (y): the first worker to join took all four partitions and gave two up
    about a second later, in most drains timed across it."""
    polls = max(1, round(SETTLED_S / GROUP_POLL_S))
    history: list[list[tuple[int, ...] | None]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history.append(started.assignments())
        if settled(history, partitions, polls):
            return
        time.sleep(GROUP_POLL_S)
    say(f"  {name}: its group did not settle within {timeout:.0f}s (partitions "
        f"{history[-1] if history else None}); draining anyway")


async def collect(settings: Settings, expected: int, timeout: float) -> list[tuple[int, bytes]]:
    """(timestamp_ms, value) of the first ``expected`` outputs (scores and dead letters)."""
    out: list[tuple[int, bytes]] = []
    async with TopicReader(settings, [settings.topic_scores, settings.topic_dlq],
                           from_beginning=True) as reader:
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            out += [(ts, value or b"") for _t, _k, value, ts in await reader.poll(0.5)]
    return out


async def last_label_write(settings: Settings, quiet_s: float = LABELS_QUIET_S) -> int | None:
    """Kafka timestamp (ms) of the last merchant state written, once none came for
    ``quiet_s``: when the contender finished applying the labels (None: it wrote none)."""
    topic = merchants_changelog_spec(settings).name
    last: int | None = None
    async with TopicReader(settings, [topic], from_beginning=True) as reader:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_s:
            got = await reader.poll(0.5)
            if got:
                quiet_since = time.monotonic()
                last = max([last or 0, *(ts for _t, _k, _v, ts in got)])
    return last


#: Drains of a worker pool run before one whose group moved no partition (the last one is
#: reported whatever happened, marked).
DRAIN_ATTEMPTS = 3
#: Seconds between two looks at a worker pool's partitions during a drain.
GROUP_POLL_S = 0.25


def moved_partitions(history: Iterable[list[tuple[int, ...] | None]]) -> bool:
    """Whether a process's partitions changed once it had some: its group rebalanced.

    Measured 2026-12-04 (x), 31 drains of two workers: when one worker joined the group first
    it took all four partitions and gave two up about a second later (the local broker forms
    a group at once: ``group.initial.rebalance.delay.ms=0``); those drains ran 7,071-9,143
    tx/s, against 9,378-11,556 for groups formed at once.
    """
    held: dict[int, tuple[int, ...]] = {}
    for snapshot in history:
        for process, partitions in enumerate(snapshot):
            if not partitions:
                continue
            if held.setdefault(process, partitions) != partitions:
                return True
    return False


class GroupWatch:
    """A thread that notes a started contender's partitions every ``interval`` seconds (the
    workers' ``/ready``; nothing for contenders outside a consumer group)."""

    def __init__(self, started: Started, interval: float = GROUP_POLL_S) -> None:
        self.started, self.interval = started, interval
        self.history: list[list[tuple[int, ...] | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="group-watch", daemon=True)

    def __enter__(self) -> GroupWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            snapshot = self.started.assignments()
            if not snapshot:
                return
            self.history.append(snapshot)
            self._stop.wait(self.interval)

    @property
    def moved(self) -> bool:
        return moved_partitions(self.history)


def throughput_run(base: Settings, contender: Contender, records: list[Outgoing],
                   timeout: float, say: Callable[[str], None]) -> Measurement:
    """The contender's drain of ``records``; a worker pool's is run again (up to
    ``DRAIN_ATTEMPTS``) when its group moved partitions meanwhile: a drain timed across the
    group's forming is not the pool's throughput."""
    for attempt in range(1, DRAIN_ATTEMPTS + 1):
        measured = drain(base, contender, records, timeout, say)
        if not measured.rebalanced:
            break
        say(f"  {contender.name}: its group moved partitions during the drain (a rebalance: "
            "a worker's log says why); " + ("draining again" if attempt < DRAIN_ATTEMPTS
                                            else "reported, marked"))
    return measured


def drain(base: Settings, contender: Contender, records: list[Outgoing], timeout: float,
          say: Callable[[str], None]) -> Measurement:
    settings = fresh(base, contender.name.replace(" ", "-"))
    ensure_topics(settings, [merchants_changelog_spec(settings)])
    # One event loop for the held transaction, which lives across the contender's start.
    loop = asyncio.new_event_loop()
    held = HeldPreload(settings)
    started: Started | None = None
    try:
        loop.run_until_complete(held.write(records))
        if not contender.held:
            loop.run_until_complete(held.release())
        say(f"  {contender.name}: draining {len(records):,} transactions and their labels")
        started = contender.start(settings)
        if contender.held:
            started.wait_ready(READY_TIMEOUT_S)
            settled_group(started, settings.partitions, READY_TIMEOUT_S, say, contender.name)
            loop.run_until_complete(held.release())
        with GroupWatch(started) as watch:
            outputs = loop.run_until_complete(collect(settings, len(records), timeout))
            labels_done = loop.run_until_complete(last_label_write(settings))
    finally:
        try:
            loop.run_until_complete(held.close())
        finally:
            loop.close()
            if started is not None:
                started.stop()
            discard(settings)
    if len(outputs) < len(records):
        raise BenchError(f"{contender.name}: only {len(outputs)} of {len(records)} outputs "
                           f"within {timeout:.0f}s")
    if labels_done is None:
        raise BenchError(f"{contender.name}: applied no label")
    first = min(ts for ts, _v in outputs)
    last = max(labels_done, *(ts for ts, _v in outputs))
    seconds = max((last - first) / 1000.0, 1e-3)
    scores_seconds = (max(ts for ts, _v in outputs) - first) / 1000.0
    return Measurement(contender.name, len(records), round(seconds, 2),
                       round(len(records) / seconds, 1), scores_seconds=round(scores_seconds, 2),
                       rebalanced=watch.moved)


#: Where a score's end-to-end latency goes, from the record's own clocks (milliseconds):
#: ingestion -> the start of its batch (fetch, the batch before it, the batch window) ->
#: the score appended to Kafka (features, model, state) -> seen by a read-committed reader
#: (the transaction's commit, its markers, the reader's fetch).
SEGMENTS = ("queued", "scoring", "committed")


@dataclass
class Latencies:
    """Per score: total, and its three segments (``SEGMENTS``), in milliseconds."""

    total: list[float] = field(default_factory=list)
    segments: dict[str, list[float]] = field(
        default_factory=lambda: {name: [] for name in SEGMENTS})

    def add(self, score: Score, appended_ms: int, seen_ms: float) -> None:
        started = datetime.fromisoformat(score["scored_at"].replace("Z", "+00:00"))
        started_ms = started.timestamp() * 1000.0
        self.total.append(seen_ms - score["ingested_at_ms"])
        for name, value in zip(SEGMENTS, (started_ms - score["ingested_at_ms"],
                                          appended_ms - started_ms, seen_ms - appended_ms),
                               strict=True):
            self.segments[name].append(value)

    def percentiles(self) -> dict[str, object]:
        total = np.asarray(self.total, dtype=np.float64)
        return {"p50": float(np.percentile(total, 50)), "p99": float(np.percentile(total, 99)),
                "max": float(total.max()),
                "segments": {name: {"p50": float(np.percentile(values, 50)),
                                    "p99": float(np.percentile(values, 99))}
                             for name, values in self.segments.items()}}


async def _paced_latency(settings: Settings, records: list[Outgoing], rate: float
                         ) -> Latencies:
    async with TopicReader(settings, [settings.topic_scores],
                           from_beginning=False) as reader:
        producer = new_producer(settings, linger_ms=1)
        await producer.start()
        task = asyncio.create_task(produce_paced(
            producer, records, topic=settings.topic_transactions,
            labels_topic=settings.topic_labels, rate=rate, label_delay_s=LABEL_DELAY_S))
        try:
            latencies = Latencies()
            deadline = None
            while len(latencies.total) < len(records):
                polled = await reader.poll(0.3)
                seen = seen_now_ms()
                for _t, _k, value, appended in polled:
                    latencies.add(orjson.loads(value or b"{}"), appended, seen)
                if task.done():
                    task.result()
                    deadline = deadline or time.monotonic() + 60
                    if time.monotonic() > deadline:
                        break
            # Every score is in: the last labels are still due (LABEL_DELAY_S after their
            # transactions). Stopping the producer under them lost them, and left the
            # sender's ProducerClosed for asyncio to print.
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await producer.stop()
    if len(latencies.total) < len(records):
        # Percentiles of what arrived would hide the slowest records: the ones still missing.
        raise BenchError(f"latency run at {rate:,.0f} tx/s: only {len(latencies.total):,} of "
                         f"{len(records):,} scores within 60 s of the last send")
    return latencies


#: The workers' own split of the queued segment: their histograms (``monitoring.metrics``),
#: read once a latency run is over. A worker counts only that run's records: it started
#: for the run and stays idle until the run sends.
WORKER_SPLITS = {"arrival": "fraudstream_record_arrival_age_seconds",
                 "batch wait": "fraudstream_batch_wait_seconds"}


def worker_splits(pages: list[str]) -> dict[str, dict[str, float]]:
    """p50 and p99 in milliseconds of each ``WORKER_SPLITS`` histogram over ``pages``,
    estimated within their buckets (none for a contender without them)."""
    splits = {}
    for part, name in WORKER_SPLITS.items():
        counts = bucket_counts(pages, name)
        p50, p99 = quantile(0.5, counts), quantile(0.99, counts)
        if p50 is not None and p99 is not None:
            splits[part] = {"p50": p50 * 1000.0, "p99": p99 * 1000.0}
    return splits


def latency_run(base: Settings, contender: Contender, label: str, records: list[Outgoing],
                rate: float, say: Callable[[str], None]) -> Measurement:
    settings = fresh(base, f"latency-{int(rate)}")
    ensure_topics(settings, [merchants_changelog_spec(settings)])
    started: Started | None = None
    try:
        started = contender.start(settings)
        started.wait_ready(READY_TIMEOUT_S)
        # Let the group settle: a late second rebalance would otherwise land in the window.
        time.sleep(WARM_UP_S)
        say(f"  {label} at {rate:,.0f} tx/s for {len(records) / rate:.0f}s")
        with quiet_collector():
            latencies = asyncio.run(_paced_latency(settings, records, rate))
        splits = worker_splits(started.metrics_pages())
    finally:
        # Also when it could not start (a slot's port taken): its topics go in any case.
        if started is not None:
            started.stop()
        discard(settings)
    figures = latencies.percentiles()
    if splits:
        figures["in_workers"] = splits
    return Measurement(f"{label} @ {rate:,.0f}/s", len(latencies.total),
                       len(records) / rate, rate, figures)


CONTENDERS = ("raw", "raw2", "naive", "1", "2", "2-alo")
#: Those with a latency run (the naive agent cannot keep up with the rates measured). The
#: raw loops give the latency of the same work with no Faust, no group and no transactions:
#: what the machine allows the workers at that rate.
LATENCY_CONTENDERS = ("raw", "raw2", "1", "2", "2-alo")
#: How the latency runs name them (the workers' names predate the others').
LATENCY_LABELS = {"1": "1 worker(s)", "2": "2 worker(s)"}


def warm_up_broker(settings: Settings, data: Dataset, rate: float,
                   broker_cpu: Callable[[], float | None], say: Callable[[str], None],
                   started_now: bool = False) -> float | None:
    """If the broker is cold (started by this benchmark, or below ``WARM_BROKER_CPU_S``), run
    two workers at ``rate`` for ``BROKER_WARM_UP_RUN_S``, unreported: whoever ran first on a
    cold broker paid for its JIT (the raw loop, by default). Returns the CPU-seconds the broker
    had used when found cold; None when it was warm, or its use is unknown and it was not
    started now."""
    used = broker_cpu()
    if not started_now and (used is None or used >= WARM_BROKER_CPU_S):
        return None
    used = used or 0.0
    say(f"warming the broker up (it has used {used:.0f} CPU-seconds since it started): "
        f"2 workers at {rate:,.0f} tx/s for {BROKER_WARM_UP_RUN_S:.0f}s, not reported")
    n = int(rate * BROKER_WARM_UP_RUN_S)
    latency_run(settings, Contender("fraudstream 2 workers", start_pool(2)), "broker warm-up",
                list(outgoing(data, 0, n, with_labels=True)), rate, say)
    return used


def run_benchmark(settings: Settings, data: Dataset, records: int, rates: list[float],
                  latency_seconds: float, say: Callable[[str], None],
                  only: tuple[str, ...] = CONTENDERS,
                  latency_of: tuple[str, ...] = ("1", "2"),
                  broker_cpu: Callable[[], float | None] = lambda: None,
                  broker_started_now: bool = False) -> dict[str, object]:
    """The whole benchmark, on a warm broker (``warm_up_broker``: ``broker_cpu`` reads how
    much CPU it has used); returns the report as a JSON-able dict."""
    cold_cpu_s = warm_up_broker(settings, data, rates[0] if rates else 1000.0, broker_cpu, say,
                                started_now=broker_started_now)
    batch = list(outgoing(data, 0, records, with_labels=True))
    everyone = {
        "raw": Contender("raw aiokafka loop",
                         start_module("fraudstream.bench.raw_loop", [str(len(batch))])),
        # The ceiling for two workers on two cores: the loop in two processes, each reading
        # half of the partitions (bench.raw_loop).
        "raw2": Contender("raw aiokafka loop in 2 processes",
                          start_module("fraudstream.bench.raw_loop",
                                       ["-", "0", "2"], ["-", "1", "2"])),
        "naive": Contender("naive faust agent", start_module("fraudstream.bench.naive_agent", []),
                           held=False),
        "1": Contender("fraudstream 1 worker", start_pool(1)),
        "2": Contender("fraudstream 2 workers", start_pool(2)),
        # The cost of exactly once: the same workers without transactions.
        "2-alo": Contender("fraudstream 2 workers at least once",
                           start_pool(2, guarantee="at_least_once")),
    }
    contenders = [everyone[k] for k in only]
    if contenders:
        say(f"throughput: {len(batch):,} transactions and their labels per contender")
    results = [throughput_run(settings, c, batch, timeout=600, say=say) for c in contenders]
    by_name = {r.name: r for r in results}
    if rates and latency_of:
        say("latency at fixed rates")
    latencies = []
    start = records
    for rate in rates:
        for i, key in enumerate(latency_of):
            n = int(rate * latency_seconds)
            paced = list(outgoing(data, start, start + n, with_labels=True))
            start += n
            label = LATENCY_LABELS.get(key, everyone[key].name)
            # A contender named twice (runs alternated) is reported twice.
            repeat = latency_of[:i].count(key)
            latencies.append(latency_run(settings, everyone[key],
                                         f"{label}, run {repeat + 1}" if repeat else label,
                                         paced, rate, say))
    measured = {key: by_name[c.name].throughput for key, c in everyone.items()
                if c.name in by_name}
    ratios = {}
    for name, (a, b) in {"1_worker_vs_raw_loop": ("1", "raw"),
                         "1_worker_vs_naive_agent": ("1", "naive"),
                         "2_workers_vs_raw_loop": ("2", "raw"),
                         "2_workers_vs_raw_loop_2_processes": ("2", "raw2"),
                         "2_workers_vs_naive_agent": ("2", "naive"),
                         "2_workers_vs_1_worker": ("2", "1"),
                         "exactly_once_vs_at_least_once": ("2", "2-alo")}.items():
        if a in measured and b in measured:
            ratios[name] = round(measured[a] / measured[b], 3)
    return {
        "records": len(batch),
        "labels_per_transaction": 1,
        "throughput_tx_per_s": {r.name: r.throughput for r in results},
        "drain_seconds": {r.name: r.seconds for r in results},
        "scores_drain_seconds": {r.name: r.scores_seconds for r in results},
        # Pools whose group still moved partitions in the last of their drains.
        "drains_with_a_rebalance": [r.name for r in results if r.rebalanced],
        "ratios": ratios,
        "latency_ms": {m.name: m.latency_ms for m in latencies},
        "load_avg_1m": {m.name: m.load["load_avg_1m"] for m in [*results, *latencies]},
        "cores": machine_load()["cores"],
        # CPU-seconds the broker had used when found cold and warmed up first (None: warm).
        "broker_warmed_up_from_cpu_s": cold_cpu_s,
    }
