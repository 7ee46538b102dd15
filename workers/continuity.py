"""Offset continuity: every input offset a worker owns reaches the processor exactly once.

Faust commits the highest offset below which every record was acknowledged, and it counts an
offset jump in what it fetched as acknowledged ("gaps", meant for transaction markers). The
transactions topic is written without transactions, so it has no such gaps: a jump means
records Faust never handed over, and committing past them would lose them without a trace.
Faust also drops records below the last offset it read, which, with a stale read position,
is the same loss. So the worker checks, per owned partition, that each batch continues
exactly where the previous one ended (the first batch after an assignment continues from the
group's committed offset), reads any missing range from Kafka itself before the batch is
acknowledged, and drops records it already processed in this ownership.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


@dataclass
class Plan:
    """What one batch needs for one partition before it can be processed."""

    #: [start, stop) offset ranges that were never delivered and must be read from Kafka.
    missing: list[tuple[int, int]] = field(default_factory=list)
    #: Offsets delivered again, already processed in this ownership.
    redelivered: set[int] = field(default_factory=set)


class OffsetContinuity:
    """Per owned partition, the next offset the processor must see."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def reset(self) -> None:
        """Forget every partition (a new assignment: continue from committed offsets)."""
        self._next.clear()

    def plan(self, partition: int, offsets: Iterable[int], committed: int | None) -> Plan:
        """Check a batch's offsets of ``partition`` against what came before.

        ``committed`` is the group's committed offset (the next to read), used when this
        worker has not processed the partition since its assignment; ``None`` when unknown.
        """
        expected = self._next.get(partition, committed)
        plan = Plan()
        for offset in sorted(set(offsets)):
            if expected is not None and offset < expected:
                plan.redelivered.add(offset)
                continue
            if expected is not None and offset > expected:
                plan.missing.append((expected, offset))
            expected = offset + 1
        return plan

    def processed(self, partition: int, last_offset: int) -> None:
        """Record that every offset of ``partition`` up to ``last_offset`` was processed."""
        if last_offset + 1 > self._next.get(partition, -1):
            self._next[partition] = last_offset + 1


class Located(Protocol):
    """Anything that names its partition and offset (a consumed record)."""

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


L = TypeVar("L", bound=Located)


def once_each(records: Iterable[L]) -> tuple[list[L], int]:
    """The records with each (partition, offset) kept once (the first), and how many repeated."""
    seen: set[tuple[int, int]] = set()
    kept: list[L] = []
    repeated = 0
    for record in records:
        where = (record.partition, record.offset)
        if where in seen:
            repeated += 1
            continue
        seen.add(where)
        kept.append(record)
    return kept, repeated


class DeliveryChaos:
    """Consumer faults for chaos tests: records never handed over, or handed over twice.

    Applied to each batch as Faust delivers it, before the continuity check: withheld records
    are what a consumer skipping offsets looks like, repeated ones what a stale seek does.
    """

    def __init__(self) -> None:
        #: Records still to withhold from the next batches.
        self.withhold = 0
        #: Records of the previous batch to hand over again with the next one.
        self.repeat = 0
        self._last: list[Any] = []

    def apply(self, batch: list[T]) -> list[T]:
        out = list(batch)
        if self.withhold:
            dropped = min(self.withhold, len(out))
            self.withhold -= dropped
            out = out[dropped:]
        if self.repeat and self._last:
            out = self._last[-self.repeat:] + out
            self.repeat = 0
        self._last = list(out)
        return out
