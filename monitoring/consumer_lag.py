"""Consumer lag per assigned partition: records written to Kafka but not yet committed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import Gauge

logger = logging.getLogger(__name__)


class StandingBacklogs:
    """Whether a partition's backlog (offsets ``start`` to ``end - 1``) holds a record, read
    through ``holds_records(tp, start, end)`` once per backlog; a read that fails counts as
    records. For backlogs that stand still: a moving one is made of records."""

    def __init__(self, holds_records: Callable[[Any, int, int], Awaitable[bool]]) -> None:
        self.holds_records = holds_records
        #: Per partition, the last backlog read: (start, end, held a record).
        self._read: dict[int, tuple[int, int, bool]] = {}

    def known(self, partition: int, start: int, end: int) -> bool | None:
        """The answer already read for this backlog, or None: a caller outside an event loop
        then needs none (the supervisor refreshes every second)."""
        read = self._read.get(partition)
        return read[2] if read is not None and read[:2] == (start, end) else None

    async def holds(self, tp: Any, start: int, end: int) -> bool:
        known = self.known(tp.partition, start, end)
        if known is not None:
            return known
        try:
            found = await self.holds_records(tp, start, end)
        except Exception as exc:  # a safeguard: unread, the backlog counts as records
            logger.warning("backlog not read partition=%d error=%r", tp.partition, exc)
            found = True
        self._read[tp.partition] = (start, end, found)
        return found


class ConsumerLag:
    """Sets ``lag{partition}`` from high watermarks and committed offsets of assigned partitions.

    ``highwater`` and ``committed`` are the consumer's own view (no request to Kafka): the high
    watermark from its last fetch, the offset of its last commit. Partitions no longer assigned
    lose their series, so a partition's lag is reported by the worker that owns it.

    A backlog that holds no record is no lag: a transactional producer upstream ends each
    transaction with a commit marker, which takes an offset that no reader receives, so one
    marker per partition stays after the offset the worker commits (counted, it showed a lag
    of 1 on every idle partition for good). A backlog that stood still since the previous
    update is read once for a record through ``holds_records(tp, start, end)``
    (``workers.changelog_tail.holds_records``; ``StandingBacklogs``).
    """

    def __init__(self, gauge: Gauge, highwater: Callable[[Any], int | None],
                 committed: Callable[[Any], int | None],
                 holds_records: Callable[[Any, int, int], Awaitable[bool]] | None = None
                 ) -> None:
        self.gauge = gauge
        self.highwater = highwater
        self.committed = committed
        self.backlogs = None if holds_records is None else StandingBacklogs(holds_records)
        self._shown: dict[str, tuple[int, int]] = {}

    async def update(self, partitions: Iterable[Any]) -> None:
        """Refresh the gauge for ``partitions`` (objects with a ``partition`` attribute)."""
        shown: dict[str, tuple[int, int]] = {}
        for tp in partitions:
            try:
                high, done = self.highwater(tp), self.committed(tp)
            except Exception:  # e.g. mid-rebalance: the partition is no longer the consumer's
                continue
            if high is None:
                continue
            label = str(tp.partition)
            offsets = (int(done or 0), int(high))
            lag = max(offsets[1] - offsets[0], 0)
            if (lag and self.backlogs is not None and self._shown.get(label) == offsets
                    and not await self.backlogs.holds(tp, *offsets)):
                lag = 0
            self.gauge.labels(label).set(lag)
            shown[label] = offsets
        for gone in set(self._shown) - set(shown):
            self.gauge.remove(gone)
        self._shown = shown
