"""Time of one scoring transaction on its own: one transactional producer, as a worker commits.

Run against the local stack: ``.venv/bin/python -m fraudstream.bench.transactions``. Each
transaction holds what a worker's batch of one partition holds (10 scores and a card record,
through the workers' own sink) and the consumed offset, and is committed; ``--gap-ms`` apart
(0: back to back). Prints the median, p90 and p99 per transaction for each combination of
the sink's batches left open (as before 2026-12-03 (p): they lingered ``linger_ms``) or closed
and aiokafka's retry wait after CONCURRENT_TRANSACTIONS (its own 20 ms, or the workers' 2 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import numpy as np
from aiokafka.producer import sender
from aiokafka.structs import TopicPartition

from fraudstream import kafka_clients
from fraudstream.settings import Settings
from fraudstream.workers.faust_bridge import CONCURRENT_TRANSACTIONS_BACKOFF_S
from fraudstream.workers.output import KafkaBatchSink
from fraudstream.workers.topics import TopicSpec, ensure_topics

AIOKAFKA_BACKOFF_S = 0.02


class OpenBatchSink(KafkaBatchSink):
    """The sink as it was: batches handed over open."""

    async def _send(self, batch: Any, topic: str, partition: int) -> Any:
        return await self.producer.send_batch(batch, topic, partition=partition)


async def timed(settings: Settings, name: str, *, closed: bool, count: int,
                gap_s: float) -> list[float]:
    """Milliseconds per transaction of ``count`` transactions."""
    producer = kafka_clients.aio_producer(
        settings, transactional_id=f"{name}-{uuid.uuid4().hex[:6]}", enable_idempotence=True,
        acks="all", linger_ms=5, max_batch_size=262_144)
    await producer.start()
    took = []
    try:
        for n in range(count):
            started = time.perf_counter()
            await producer.begin_transaction()
            sink = KafkaBatchSink(producer) if closed else OpenBatchSink(producer)
            for i in range(10):
                sink.add(f"{name}-scores", b"card-%d" % i, b"s" * 300, 0)
            sink.add(f"{name}-cards", b"card", b"c" * 3000, 0)
            await sink.flush()
            await producer.send_offsets_to_transaction(
                {TopicPartition(f"{name}-input", 0): n + 1}, name)
            await producer.commit_transaction()
            took.append((time.perf_counter() - started) * 1000)
            if gap_s:
                await asyncio.sleep(gap_s)
    finally:
        await producer.stop()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="transactions per case")
    parser.add_argument("--gap-ms", type=float, default=5.0,
                        help="pause between transactions (0: back to back)")
    args = parser.parse_args()
    settings = Settings()
    name = f"bench-txn-{uuid.uuid4().hex[:6]}"
    ensure_topics(settings, [TopicSpec(f"{name}-{t}", 1, settings.replication_factor, {})
                             for t in ("scores", "cards", "input")])
    for closed in (False, True):
        for backoff in (AIOKAFKA_BACKOFF_S, CONCURRENT_TRANSACTIONS_BACKOFF_S):
            sender.BACKOFF_OVERRIDE = backoff
            took = np.asarray(asyncio.run(timed(settings, name, closed=closed,
                                                count=args.count, gap_s=args.gap_ms / 1000)))
            p50, p90, p99 = np.percentile(took, [50, 90, 99])
            print(f"batches {'closed' if closed else 'open  '}  retry after "
                  f"CONCURRENT_TRANSACTIONS {backoff * 1000:4.0f} ms:  p50 {p50:5.1f}  "
                  f"p90 {p90:5.1f}  p99 {p99:5.1f} ms per transaction", flush=True)


if __name__ == "__main__":
    main()
