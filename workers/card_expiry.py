"""Idle cards leave the card table: a sweep, a chunk at a time, in event time.

A card whose newest transaction is older than ``idle_s`` in its partition's event time (the
newest transaction time the worker has seen on that partition, not the wall clock: a replay of
last year's data must not wipe the table) no longer contributes to any feature (the longest
window is 30 days) nor to duplicate detection (2 days). Such a card is removed with a tombstone
in the changelog, so the compacted changelog, and with it every future restore, shrinks too.

The sweep reads a chunk of each owned partition per call, under the same lock as the scoring
step, so a card is never removed between a batch reading it and writing it back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from features.windows import DAY_S
from workers.card_record import CardRecord
from workers.state_tables import ExpiringTable

logger = logging.getLogger(__name__)

#: Longer than the longest feature window (30 days) with a day to spare.
DEFAULT_IDLE_S = 31 * DAY_S


class CardExpiry:
    """Walks each partition of a card table in key order, removing idle cards."""

    def __init__(self, cards: ExpiringTable, lock: asyncio.Lock,
                 idle_s: float = DEFAULT_IDLE_S, chunk: int = 2000) -> None:
        self.cards = cards
        self.lock = lock
        self.idle_s = idle_s
        self.chunk = chunk
        self._cursor: dict[int, bytes | None] = {}

    async def sweep(self, partitions: Iterable[int], newest: Mapping[int, int]) -> int:
        """One chunk of each partition; returns how many cards were removed.

        ``newest`` holds each partition's newest event time; a partition without one (nothing
        scored there yet by this worker) is left alone.
        """
        removed = 0
        for partition in sorted(partitions):
            now = newest.get(partition)
            if now is None:
                continue
            horizon = now - self.idle_s
            async with self.lock:
                rows = self.cards.scan(partition, self._cursor.get(partition), self.chunk)
                # Past the last key: the next call starts the partition over.
                self._cursor[partition] = rows[-1][0] if len(rows) == self.chunk else None
                idle = []
                for key, wire in rows:
                    seen = CardRecord.last_seen(wire)
                    if seen is None or seen < horizon:
                        idle.append((key, partition))
                if idle:
                    await self.cards.delete_many(idle)
            removed += len(idle)
        if removed:
            logger.info("expired idle cards count=%d", removed)
        return removed

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the cursors of partitions this worker no longer owns."""
        for partition in partitions:
            self._cursor.pop(partition, None)
