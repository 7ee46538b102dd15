"""Time of one scoring transaction on its own: one transactional producer, as a worker commits.

Run against the local stack: ``.venv/bin/python -m fraudstream.bench.transactions``. Each
transaction holds what a worker's batch of one partition holds (10 scores and a card record)
and the consumed offset, committed through the workers' own ``FencedOutputs.commit``,
``--gap-ms`` apart (0: back to back). Prints the median, p90 and p99 per transaction for each
combination of the sink's batches left open (as before 2026-12-03 (p): they lingered
``linger_ms``) or closed and aiokafka's retry wait after CONCURRENT_TRANSACTIONS (its own
20 ms, or the workers' 2 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from typing import Any
from unittest import mock

import numpy as np
from aiokafka.producer import sender

from fraudstream import kafka_clients
from fraudstream.settings import Settings
from fraudstream.workers.faust_bridge import CONCURRENT_TRANSACTIONS_BACKOFF_S
from fraudstream.workers.fenced_outputs import FencedOutputs, OutputRecord
from fraudstream.workers.output import KafkaBatchSink
from fraudstream.workers.topics import TopicSpec, ensure_topics

AIOKAFKA_BACKOFF_S = 0.02


async def open_send(self: KafkaBatchSink, batch: Any, topic: str, partition: int) -> Any:
    """The sink as it was: batches handed over open."""
    return await self.producer.send_batch(batch, topic, partition=partition)


async def timed(settings: Settings, name: str, *, count: int, gap_s: float) -> list[float]:
    """Milliseconds per transaction of ``count`` transactions, each committed the way a worker
    commits one input partition's batch (``FencedOutputs.commit``)."""
    outputs = FencedOutputs(
        app_id=name, input_topic=f"{name}-input", group_id=name,
        producer_factory=lambda tid: kafka_clients.aio_producer(
            settings, transactional_id=tid, enable_idempotence=True, acks="all", linger_ms=5,
            max_batch_size=262_144))
    await outputs.open([0])
    records: list[OutputRecord] = [(f"{name}-scores", b"card-%d" % i, b"s" * 300, 0)
                                   for i in range(10)]
    records.append((f"{name}-cards", b"card", b"c" * 3000, 0))
    took = []
    try:
        for n in range(count):
            started = time.perf_counter()
            await outputs.commit(0, records, n + 1)
            took.append((time.perf_counter() - started) * 1000)
            if gap_s:
                await asyncio.sleep(gap_s)
    finally:
        await outputs.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="transactions per case")
    parser.add_argument("--gap-ms", type=float, default=5.0,
                        help="pause between transactions (0: back to back)")
    args = parser.parse_args()
    settings = Settings.from_env()
    name = f"bench-txn-{uuid.uuid4().hex[:6]}"
    ensure_topics(settings, [TopicSpec(f"{name}-{t}", 1, settings.replication_factor, {})
                             for t in ("scores", "cards", "input")])
    for closed in (False, True):
        for backoff in (AIOKAFKA_BACKOFF_S, CONCURRENT_TRANSACTIONS_BACKOFF_S):
            sender.BACKOFF_OVERRIDE = backoff
            send = contextlib.nullcontext() if closed else mock.patch.object(
                KafkaBatchSink, "_send", open_send)
            with send:
                took = np.asarray(asyncio.run(timed(settings, name, count=args.count,
                                                    gap_s=args.gap_ms / 1000)))
            p50, p90, p99 = np.percentile(took, [50, 90, 99])
            print(f"batches {'closed' if closed else 'open  '}  retry after "
                  f"CONCURRENT_TRANSACTIONS {backoff * 1000:4.0f} ms:  p50 {p50:5.1f}  "
                  f"p90 {p90:5.1f}  p99 {p99:5.1f} ms per transaction", flush=True)


if __name__ == "__main__":
    main()
