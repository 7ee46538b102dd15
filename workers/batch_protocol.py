"""The scoring path's batch protocol, in the order it runs (README, "Exactly one decision").

``ScoringBatches.run`` takes each batch the consumer hands over, under the state lock:

1. **Continuity** (``InputContinuity.complete``): each owned partition continues exactly where
   the previous batch ended, and the first batch of an ownership where that ownership starts
   (``OwnershipStarts``). Records delivered again are dropped; offsets never delivered are read
   from Kafka (a short read raises: the batch fails unacknowledged).
2. **Takeover** (at least once only): records whose score or dead letter a previous owner of
   the partition already wrote are skipped. Exactly once needs no such scan: a predecessor's
   outputs committed together with its offsets.
3. **Score** (``ScoringProcessor``): scores, dead letters and the card changelog, written
   under exactly once with the consumed offsets in one Kafka transaction per input partition
   (``workers.fenced_outputs``). A record Kafka refuses, or a bug, isolates the batch: what has
   no output yet is redone record by record and the culprit dead-lettered.
4. **Committed** (exactly once): the consumer learns the offsets the transactions committed,
   for every partition still open here (a fenced one stays closed until it is assigned again).
5. **Cursor**: the continuity cursor moves past the batch.

Kafka failing (rather than refusing a record) raises out of ``run``; the worker then exits
before any of the batch is acknowledged, and the group gives its partitions to another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError

from fraudstream.monitoring.metrics import WorkerMetrics
from fraudstream.workers.continuity import OffsetContinuity, once_each
from fraudstream.workers.output import is_record_error
from fraudstream.workers.processor import RawRecord

logger = logging.getLogger(__name__)


class ConsumerOffsets(Protocol):
    """The group's committed offsets as the worker's consumer holds them."""

    def committed(self, topic: str, partition: int) -> int | None: ...

    def note_committed(self, topic: str, partition: int, offset: int) -> None: ...


class InputReader(Protocol):
    """Reads a topic's records and log start straight from Kafka (``TakeoverScan``)."""

    async def records(self, topic: str, partition: int, start: int, stop: int) -> list[Any]: ...

    async def log_start(self, topic: str, partition: int) -> int: ...


class OutputReader(Protocol):
    """Which input offsets of a partition already have a score or dead letter."""

    async def emitted(self, partition: int, from_offset: int) -> set[int]: ...


class Processor(Protocol):
    async def process(self, batch: Sequence[RawRecord]) -> None: ...

    async def process_isolated(self, batch: Sequence[RawRecord], error: Exception) -> None: ...


class OwnershipStarts:
    """Where each ownership of an input partition starts (the scoring and label paths share it).

    Under exactly once, the group's committed offsets read after the fence, once pending
    transactions were waited out (``settle``, from ``workers.stable_offsets``); otherwise the
    offsets Faust's consumer read at the rebalance. A partition the group never committed
    starts at its first offset (Faust seeks back only to committed offsets: a partition without
    one whose prefetched records were dropped in a rebalance would otherwise silently start
    where the fetch was).
    """

    def __init__(self, consumer: ConsumerOffsets) -> None:
        self.consumer = consumer
        self._settled: dict[tuple[str, int], int | None] = {}
        self._log_starts: dict[tuple[str, int], int] = {}

    def settle(self, topic: str, starts: Mapping[tuple[str, int], int | None]) -> None:
        """This ownership's starts of ``topic`` (None: the group has no offset for one)."""
        for key in [key for key in self._settled if key[0] == topic]:
            del self._settled[key]
        self._settled.update(starts)
        for (name, partition), offset in starts.items():
            if offset is not None:  # the consumer, and the lag read from it, know it too
                self.consumer.note_committed(name, partition, offset)

    def forget_log_starts(self) -> None:
        self._log_starts.clear()

    async def expected(self, topic: str, partition: int, reader: InputReader) -> int:
        if (topic, partition) in self._settled:
            committed = self._settled[(topic, partition)]
        else:
            committed = self.consumer.committed(topic, partition)
        if committed is not None:
            return committed
        start = self._log_starts.get((topic, partition))
        if start is None:
            start = self._log_starts[(topic, partition)] = await reader.log_start(topic,
                                                                                 partition)
        return start


class InputContinuity:
    """Step 1 for one input topic: each record of an ownership reaches the processor once."""

    def __init__(self, topic: str, reader: InputReader, starts: OwnershipStarts,
                 metrics: WorkerMetrics) -> None:
        self.topic = topic
        #: One reader per path: a reader reads one partition at a time.
        self.reader = reader
        self.starts = starts
        self.metrics = metrics
        self.cursor = OffsetContinuity()

    def reset(self) -> None:
        """A new ownership: continue from where it starts."""
        self.cursor.reset()

    def processed(self, batch: Sequence[RawRecord]) -> None:
        for r in batch:
            self.cursor.processed(r.partition, r.offset)

    async def complete(self, batch: list[RawRecord]) -> list[RawRecord]:
        """The batch with never-delivered records read in and records seen before dropped."""
        batch, repeated = once_each(batch)
        if repeated:
            logger.warning("delivered twice in one batch, dropped count=%d", repeated)
            self.metrics.offsets_redelivered.inc(repeated)
        offsets: dict[int, list[int]] = {}
        for r in batch:
            offsets.setdefault(r.partition, []).append(r.offset)
        kept, read_in = batch, []
        for partition, seen in offsets.items():
            plan = self.cursor.plan(partition, seen, await self.starts.expected(
                self.topic, partition, self.reader))
            if plan.redelivered:
                logger.warning("delivered again, dropped topic=%s partition=%d offsets=%d..%d "
                               "count=%d", self.topic, partition, min(plan.redelivered),
                               max(plan.redelivered), len(plan.redelivered))
                self.metrics.offsets_redelivered.inc(len(plan.redelivered))
                kept = [r for r in kept
                        if r.partition != partition or r.offset not in plan.redelivered]
            for start, stop in plan.missing:
                # Raises ShortRead when the read cannot reach ``stop``: the batch then fails
                # unacknowledged instead of moving the cursor past records never read.
                found = await self.reader.records(self.topic, partition, start, stop)
                logger.warning("offset gap read from Kafka topic=%s partition=%d "
                               "offsets=%d..%d read=%d", self.topic, partition, start,
                               stop - 1, len(found))
                if len(found) < stop - start:
                    await self._log_absent(partition, start, stop, len(found))
                self.metrics.offsets_gap_filled.inc(len(found))
                read_in += [RawRecord(self.topic, partition, rec.offset, rec.key, rec.value,
                                      rec.timestamp) for rec in found]
        if read_in:
            kept = sorted(kept + read_in, key=lambda r: (r.partition, r.offset))
        return kept

    async def _log_absent(self, partition: int, start: int, stop: int, found: int) -> None:
        """Say why offsets of a gap that was read to its end hold no record: deleted by
        retention before anyone processed them (an error: they are lost), or offsets that never
        held a record to read committed (an upstream producer's transaction markers and aborted
        records)."""
        log_start = await self.reader.log_start(self.topic, partition)
        if log_start > start:
            logger.error("offset gap topic=%s partition=%d offsets=%d..%d: records before %d "
                         "were deleted by retention before they were processed", self.topic,
                         partition, start, stop - 1, log_start)
        else:
            logger.info("offset gap topic=%s partition=%d offsets=%d..%d: %d offsets hold no "
                        "committed record (transaction markers, aborted records)", self.topic,
                        partition, start, stop - 1, stop - start - found)


class ScoringBatches:
    """The protocol above, for the transactions topic."""

    def __init__(self, *, continuity: InputContinuity, outputs_read: OutputReader,
                 processor: Processor, consumer: ConsumerOffsets,
                 open_partitions: Callable[[], Collection[int]], metrics: WorkerMetrics,
                 exactly_once: bool) -> None:
        self.continuity = continuity
        self.outputs_read = outputs_read
        self.processor = processor
        self.consumer = consumer
        #: The input partitions whose transactions may still commit here (exactly once).
        self.open_partitions = open_partitions
        self.metrics = metrics
        self.exactly_once = exactly_once
        #: Partitions (newly) assigned whose predecessor's outputs were not read yet, and per
        #: partition the input offsets that already have an output (at least once).
        self._unverified: set[int] = set()
        self._already_done: dict[int, set[int]] = {}

    async def run(self, batch: list[RawRecord]) -> None:
        """One batch, steps 1 to 5 (the module's docstring)."""
        batch = await self.continuity.complete(batch)
        todo = await self._skip_already_done(batch)
        await self._score(todo)
        if self.exactly_once:
            self._note_committed(todo)
        self.continuity.processed(batch)

    def verify_takeover(self, owned: Collection[int]) -> None:
        """Partitions just assigned: under at least once, read what their predecessor wrote."""
        self._unverified = set() if self.exactly_once else set(owned)

    def forget_done(self) -> None:
        self._already_done.clear()

    async def _skip_already_done(self, batch: list[RawRecord]) -> list[RawRecord]:
        """Drop records whose output a previous owner of their partition already wrote."""
        for partition in {r.partition for r in batch} & self._unverified:
            first = min(r.offset for r in batch if r.partition == partition)
            done = await self.outputs_read.emitted(partition, first)
            self._unverified.discard(partition)
            if done:
                logger.info("takeover partition=%d from_offset=%d already_done=%d",
                            partition, first, len(done))
                self._already_done[partition] = done
        if not self._already_done:
            return batch
        kept = []
        for r in batch:
            seen = self._already_done.get(r.partition)
            if seen is not None and r.offset in seen:
                seen.discard(r.offset)
                self.metrics.takeover_skipped.inc()
                if not seen:
                    del self._already_done[r.partition]
                continue
            kept.append(r)
        return kept

    async def _score(self, todo: list[RawRecord]) -> None:
        if not todo:
            return
        try:
            await self.processor.process(todo)
        except (KafkaError, ProducerSendError) as exc:
            if not is_record_error(exc):
                raise
            # Part of the batch's output may be written: only the rest is redone.
            await self.processor.process_isolated(await self._not_yet_out(todo), exc)
        except Exception as exc:  # never lose a batch to a bug
            await self.processor.process_isolated(await self._not_yet_out(todo), exc)

    async def _not_yet_out(self, batch: list[RawRecord]) -> list[RawRecord]:
        """The records of ``batch`` that no score or dead letter names yet."""
        done: set[tuple[int, int]] = set()
        for partition in {r.partition for r in batch}:
            first = min(r.offset for r in batch if r.partition == partition)
            done |= {(partition, o) for o in await self.outputs_read.emitted(partition, first)}
        return [r for r in batch if (r.partition, r.offset) not in done]

    def _note_committed(self, todo: list[RawRecord]) -> None:
        """Tell the consumer the offsets the batch's transactions committed: every partition
        still open here (a fenced one is closed until the next assignment)."""
        still_mine = self.open_partitions()
        ends: dict[int, int] = {}
        for r in todo:
            if r.partition in still_mine:
                ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        for partition, end in ends.items():
            self.consumer.note_committed(self.continuity.topic, partition, end)
