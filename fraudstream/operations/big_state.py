"""A card table of any size, written straight to its changelog (big-state scenarios, bench).

Scoring a million distinct cards through the workers would take many minutes on a small
machine; what a restore has to read is the changelog, so that is what gets filled: one record
per card, shaped like a card's record after a day of use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from fraudstream.settings import Settings
from fraudstream.streaming import new_producer
from fraudstream.workers.card_record import CardRecord, Decision
from fraudstream.workers.output import key_partition
from fraudstream.workers.topics import card_changelog

#: Batches in flight before the filler waits for acknowledgements.
IN_FLIGHT = 64


def card_value(index: int) -> bytes:
    """A changelog value like a card's after a day of use: 6 transactions, 6 decisions."""
    record = CardRecord()
    start = 1_700_000_000 + index % 86_400
    for n in range(6):
        ts = start + n * 3_600
        record.state.observe(ts, 10.0 + (index * 7 + n * 13) % 200)
        record.remember(Decision(f"tx-{index}-{n}", ts, 0, index * 6 + n, 0.02, "approve",
                                 "v20261130-rf"))
    return orjson.dumps(record.to_wire())


def card_key(index: int) -> bytes:
    return f"preloaded-card-{index:08d}".encode()


async def fill_card_changelog(settings: Settings, first: int, count: int,
                              progress: Callable[[int], None] | None = None) -> None:
    """Write cards first..first+count-1 to the card table's changelog (on their partitions)."""
    topic = card_changelog(settings)
    producer = new_producer(settings, linger_ms=20)
    await producer.start()
    try:
        batches: dict[int, Any] = {}
        pending: list[Any] = []
        template = card_value(0)  # one shape for all: the cost measured is the restore's
        for i in range(first, first + count):
            key = card_key(i)
            partition = key_partition(key, settings.partitions)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=template, timestamp=None) is None:
                pending.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = producer.create_batch()
                batch.append(key=key, value=template, timestamp=None)
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending = []
                if progress is not None:
                    progress(i + 1 - first)
        for partition, batch in batches.items():
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
        if progress is not None:
            progress(count)
    finally:
        await producer.stop()
