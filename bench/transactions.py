"""Time of one scoring transaction on its own: transactional producers, as a worker commits.

Run against the local stack: ``.venv/bin/python -m fraudstream.bench.transactions``. Each
transaction holds what a worker's batch of one partition holds (10 scores and a card record)
and the consumed offset, committed through the workers' own ``commit_each`` (one
``FencedOutputs.commit`` per input partition), ``--gap-ms`` apart (0: back to back).

``--compare waits`` (the default) prints the median, p90 and p99 per transaction for each
combination of the sink's batches left open (as before 2026-12-03 (p): they lingered
``linger_ms``) or closed and aiokafka's retry wait after CONCURRENT_TRANSACTIONS (its own
20 ms, or the workers' 2 ms).

``--compare offsets`` commits two input partitions at once (a worker owning two, through
``commit_each``), with the consumed offsets in the transactions as the workers send them, and
without them (the outputs alone: AddPartitionsToTxn, Produce and EndTxn, without
AddOffsetsToTxn and TxnOffsetCommit), alternated ``--rounds`` times. It prints, per cycle of
the two transactions, the median, p90 and p99, the cycles a second, and the CPU the local
stack's Kafka node used per cycle (read from ``/proc``).

``--compare shared`` commits the same two partitions' outputs and offsets per cycle as the
workers do (one transaction per input partition, each with its own transactional id, so that
taking a partition over fences its previous owner) and in one transaction from one producer
(what a worker's commit would cost if zombies were fenced some other way, as Kafka's
KIP-447 does with the consumer group's generation), alternated ``--rounds`` times, with the
same figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from unittest import mock

import numpy as np
from aiokafka.producer import sender

from fraudstream import kafka_clients
from fraudstream.deploy.local import stack_from_settings
from fraudstream.deploy.local.process import process_cpu_seconds
from fraudstream.settings import Settings
from fraudstream.workers.faust_bridge import CONCURRENT_TRANSACTIONS_BACKOFF_S
from fraudstream.workers.fenced_outputs import FencedOutputs, OutputRecord, commit_each
from fraudstream.workers.output import KafkaBatchSink
from fraudstream.workers.topics import TopicSpec, ensure_topics

AIOKAFKA_BACKOFF_S = 0.02
#: Input partitions committed together in ``--compare offsets`` (a worker owning 2 of 4).
PARTITIONS = (0, 1)


async def open_send(self: KafkaBatchSink, batch: Any, topic: str, partition: int) -> Any:
    """The sink as it was: batches handed over open."""
    return await self.producer.send_batch(batch, topic, partition=partition)


def batch_records(name: str, partition: int) -> list[OutputRecord]:
    """What one batch of one input partition writes: 10 scores and a card record."""
    records: list[OutputRecord] = [(f"{name}-scores", b"card-%d" % i, b"s" * 300, partition)
                                   for i in range(10)]
    records.append((f"{name}-cards", b"card", b"c" * 3000, partition))
    return records


def fenced_outputs(settings: Settings, name: str) -> FencedOutputs:
    return FencedOutputs(
        app_id=name, input_topic=f"{name}-input", group_id=name,
        producer_factory=lambda tid: kafka_clients.aio_producer(
            settings, transactional_id=tid, enable_idempotence=True, acks="all", linger_ms=5,
            max_batch_size=262_144))


class Cycles:
    """What ``cycles`` measured: milliseconds per cycle, cycles a second, and the Kafka
    node's CPU seconds per cycle (None when its process was not found)."""

    def __init__(self, took: list[float], seconds: float, broker_cpu_s: float | None,
                 client_cpu_s: float = 0.0) -> None:
        self.took = took
        self.per_second = len(took) / seconds
        self.broker_ms = None if broker_cpu_s is None else broker_cpu_s / len(took) * 1000
        #: This process's CPU per cycle (the producers' side, as a worker would spend it).
        self.client_ms = client_cpu_s / len(took) * 1000


async def timed(count: int, gap_s: float, broker_cpu: Callable[[], float | None],
                cycle: Callable[[int], Awaitable[None]]) -> Cycles:
    """Run ``cycle(n)`` for n in 0..count-1, ``gap_s`` apart, timing each, with the Kafka
    node's and this process's CPU over them all."""
    took = []
    cpu_before, started_all = broker_cpu(), time.perf_counter()
    client_before = time.process_time()
    for n in range(count):
        started = time.perf_counter()
        await cycle(n)
        took.append((time.perf_counter() - started) * 1000)
        if gap_s:
            await asyncio.sleep(gap_s)
    seconds, cpu_after = time.perf_counter() - started_all, broker_cpu()
    client_used = time.process_time() - client_before
    used = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Cycles(took, seconds, used, client_used)


async def cycles(settings: Settings, name: str, *, offsets: bool, count: int, gap_s: float,
                 broker_cpu: Callable[[], float | None],
                 partitions: tuple[int, ...] = PARTITIONS) -> Cycles:
    """``count`` cycles of one transaction per input partition of ``partitions``, committed
    at once (``commit_each``, as the scoring step commits a batch), with or without the
    consumed offsets."""
    outputs = fenced_outputs(settings, name)
    await outputs.open(partitions)
    records = {p: batch_records(name, p) for p in partitions}

    async def cycle(n: int) -> None:
        done = await commit_each(outputs, records,
                                 dict.fromkeys(partitions, n + 1) if offsets else {})
        if done.failure is not None:
            raise done.failure

    try:
        return await timed(count, gap_s, broker_cpu, cycle)
    finally:
        await outputs.close()


def kafka_node_cpu(settings: Settings) -> Callable[[], float | None]:
    """CPU seconds used so far by the local stack's first Kafka node (None: not running)."""
    node = stack_from_settings(settings).kafka_node(1)

    def read() -> float | None:
        pid = node.pid()
        return None if pid is None else process_cpu_seconds(pid)

    return read


async def shared_cycles(settings: Settings, name: str, *, count: int, gap_s: float,
                        broker_cpu: Callable[[], float | None],
                        partitions: tuple[int, ...] = PARTITIONS) -> Cycles:
    """``count`` cycles of one transaction holding every partition's records and consumed
    offset, from one transactional producer (the sink and the calls of
    ``FencedOutputs.commit``, for all partitions at once)."""
    from aiokafka import TopicPartition

    producer = kafka_clients.aio_producer(
        settings, transactional_id=f"{name}-shared", enable_idempotence=True, acks="all",
        linger_ms=5, max_batch_size=262_144)
    records = [r for p in partitions for r in batch_records(name, p)]

    async def cycle(n: int) -> None:
        await producer.begin_transaction()
        sink = KafkaBatchSink(producer)
        for topic, key, value, partition in records:
            sink.add(topic, key, value, partition)
        await sink.flush()
        await producer.send_offsets_to_transaction(
            {TopicPartition(f"{name}-input", p): n + 1 for p in partitions}, name)
        await producer.commit_transaction()

    try:
        await producer.start()
        return await timed(count, gap_s, broker_cpu, cycle)
    finally:
        await producer.stop()


def percentiles(took: list[float]) -> str:
    p50, p90, p99 = np.percentile(np.asarray(took), [50, 90, 99])
    return f"p50 {p50:5.1f}  p90 {p90:5.1f}  p99 {p99:5.1f} ms"


def compare_waits(settings: Settings, name: str, count: int, gap_s: float) -> None:
    for closed in (False, True):
        for backoff in (AIOKAFKA_BACKOFF_S, CONCURRENT_TRANSACTIONS_BACKOFF_S):
            sender.BACKOFF_OVERRIDE = backoff
            send = contextlib.nullcontext() if closed else mock.patch.object(
                KafkaBatchSink, "_send", open_send)
            with send:
                measured = asyncio.run(cycles(settings, name, offsets=True, count=count,
                                              gap_s=gap_s, broker_cpu=lambda: None,
                                              partitions=(0,)))
            print(f"batches {'closed' if closed else 'open  '}  retry after "
                  f"CONCURRENT_TRANSACTIONS {backoff * 1000:4.0f} ms:  "
                  f"{percentiles(measured.took)} per transaction", flush=True)


def compare_offsets(settings: Settings, name: str, count: int, gap_s: float,
                    rounds: int) -> None:
    sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_S  # as in the workers
    broker_cpu = kafka_node_cpu(settings)
    for round_ in range(1, rounds + 1):
        for offsets in (True, False):
            measured = asyncio.run(cycles(settings, name, offsets=offsets, count=count,
                                          gap_s=gap_s, broker_cpu=broker_cpu))
            label = "with the offsets   " if offsets else "outputs alone      "
            print(f"round {round_}  {label} {describe(measured)}", flush=True)


def compare_shared(settings: Settings, name: str, count: int, gap_s: float,
                   rounds: int) -> None:
    sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_S  # as in the workers
    broker_cpu = kafka_node_cpu(settings)
    for round_ in range(1, rounds + 1):
        for shared in (False, True):
            measured = asyncio.run(
                shared_cycles(settings, name, count=count, gap_s=gap_s, broker_cpu=broker_cpu)
                if shared else cycles(settings, name, offsets=True, count=count, gap_s=gap_s,
                                      broker_cpu=broker_cpu))
            label = ("one for both        " if shared
                     else "one per partition   ")
            print(f"round {round_}  {label} {describe(measured)}", flush=True)


def describe(measured: Cycles) -> str:
    broker = ("Kafka node's CPU not read" if measured.broker_ms is None
              else f"Kafka node {measured.broker_ms:4.1f} ms of CPU per cycle")
    return (f"{percentiles(measured.took)} per cycle of {len(PARTITIONS)} partitions, "
            f"{measured.per_second:5.1f} cycles/s, {broker}, client {measured.client_ms:4.1f} "
            "ms of CPU per cycle")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="--compare waits: open or closed batches, aiokafka's 20 ms or the workers' 2 ms "
               "retry after CONCURRENT_TRANSACTIONS. --compare offsets: two partitions' "
               "transactions with and without the consumed offsets, alternated, with the "
               "local Kafka node's CPU per cycle. --compare shared: the same two "
               "partitions in one transaction per partition (as the workers commit) and in one "
               "transaction for both, alternated, with the same figures.")
    parser.add_argument("--compare", choices=("waits", "offsets", "shared"), default="waits",
                        help="what to compare (default waits)")
    parser.add_argument("--count", type=int, default=200, help="transactions (cycles) per case")
    parser.add_argument("--gap-ms", type=float, default=5.0,
                        help="pause between transactions (0: back to back)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="--compare offsets and shared: how many times each case runs, "
                             "alternated")
    args = parser.parse_args()
    settings = Settings.from_env()
    name = f"bench-txn-{uuid.uuid4().hex[:6]}"
    partitions = 1 if args.compare == "waits" else len(PARTITIONS)
    ensure_topics(settings, [TopicSpec(f"{name}-{t}", partitions, settings.replication_factor,
                                       {}) for t in ("scores", "cards", "input")])
    if args.compare == "offsets":
        compare_offsets(settings, name, args.count, args.gap_ms / 1000, args.rounds)
    elif args.compare == "shared":
        compare_shared(settings, name, args.count, args.gap_ms / 1000, args.rounds)
    else:
        compare_waits(settings, name, args.count, args.gap_ms / 1000)


if __name__ == "__main__":
    main()
