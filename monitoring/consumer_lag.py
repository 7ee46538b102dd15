"""Consumer lag per assigned partition: records written to Kafka but not yet committed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Gauge


class ConsumerLag:
    """Sets ``lag{partition}`` from high watermarks and committed offsets of assigned partitions.

    ``highwater`` and ``committed`` are the consumer's own view (no request to Kafka): the high
    watermark from its last fetch, the offset of its last commit. Partitions no longer assigned
    lose their series, so a partition's lag is reported by the worker that owns it.
    """

    def __init__(self, gauge: Gauge, highwater: Callable[[Any], int | None],
                 committed: Callable[[Any], int | None]) -> None:
        self.gauge = gauge
        self.highwater = highwater
        self.committed = committed
        self._shown: set[str] = set()

    def update(self, partitions: Iterable[Any]) -> None:
        """Refresh the gauge for ``partitions`` (objects with a ``partition`` attribute)."""
        shown: set[str] = set()
        for tp in partitions:
            try:
                high, done = self.highwater(tp), self.committed(tp)
            except Exception:  # e.g. mid-rebalance: the partition is no longer the consumer's
                continue
            if high is None:
                continue
            label = str(tp.partition)
            self.gauge.labels(label).set(max(int(high) - int(done or 0), 0))
            shown.add(label)
        for gone in self._shown - shown:
            self.gauge.remove(gone)
        self._shown = shown
