"""Outputs fenced per input partition: one Kafka transaction per batch slice of a partition.

Every output of an input partition (scores, dead letters, card changelog) and the consumed
offset go into one transaction of a producer whose ``transactional.id`` names that partition.
When a new owner opens the partition, the broker bumps the id's epoch: the old owner's open
transaction is aborted and every later write or commit it tries fails as fenced, whether or
not anybody killed it (a paused VM, a worker cut off from the group coordinator, an orphan of
a dead supervisor). Readers that read committed never see the zombie's writes.

aiokafka's ``send_offsets_to_transaction`` sends no group generation or member id (no KIP-447),
so the fence is the transactional id alone: exactly one id per input partition, the same in
every worker, is what makes it hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import TopicPartition

from fraudstream.workers.output import KafkaBatchSink

logger = logging.getLogger(__name__)

#: (topic, key, value, partition) of one output record (value None: a tombstone).
OutputRecord = tuple[str, bytes | None, bytes | None, int]


class FencedError(RuntimeError):
    """Another owner opened this partition's transactional id: this worker must stop writing
    for the partition (retrying cannot help)."""

    retriable = False


def transactional_id(app_id: str, topic: str, partition: int) -> str:
    """The one transactional id of an input partition, the same in every worker."""
    return f"{app_id}-{topic}-{partition}"


class FencedOutputs:
    """Transactional producers of the input partitions this worker owns.

    ``producer_factory(transactional_id)`` returns an unstarted aiokafka producer; starting it
    initialises the id's transactions, which fences every earlier holder of the id.
    """

    def __init__(self, *, app_id: str, input_topic: str, group_id: str,
                 producer_factory: Callable[[str], Any]) -> None:
        self.app_id = app_id
        self.input_topic = input_topic
        self.group_id = group_id
        self.producer_factory = producer_factory
        self._producers: dict[int, Any] = {}

    @property
    def partitions(self) -> set[int]:
        return set(self._producers)

    async def open(self, partitions: Iterable[int]) -> None:
        """Take the transactional ids of ``partitions`` (fencing their previous holders)."""
        await asyncio.gather(*(self._open(p) for p in sorted(set(partitions)
                                                            - set(self._producers))))

    async def _open(self, partition: int) -> None:
        tid = transactional_id(self.app_id, self.input_topic, partition)
        producer = self.producer_factory(tid)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producers[partition] = producer
        logger.info("fenced outputs opened partition=%d transactional_id=%s", partition, tid)

    async def close(self, partitions: Iterable[int] | None = None) -> None:
        """Release the producers of ``partitions`` (all when None)."""
        chosen = set(self._producers) if partitions is None else set(partitions)
        for partition in sorted(chosen & set(self._producers)):
            producer = self._producers.pop(partition)
            try:
                await producer.stop()
            except KafkaError as exc:  # a fenced or broken producer still releases
                logger.warning("fenced outputs close partition=%d error=%r", partition, exc)

    async def commit(self, partition: int, records: Sequence[OutputRecord],
                     next_offset: int | None) -> dict[tuple[str, int], int]:
        """Write ``records`` and mark the input consumed up to ``next_offset`` (None: no
        offset, e.g. housekeeping tombstones), atomically.

        Returns the offset of the last record written per (topic, partition). Raises
        ``FencedError`` when another owner has taken the partition: nothing of this call
        becomes visible to readers that read committed.
        """
        producer = self._producers.get(partition)
        if producer is None:
            raise FencedError(f"partition {partition} of {self.input_topic} is not open here")
        try:
            await producer.begin_transaction()
            try:
                sink = KafkaBatchSink(producer)
                for topic, key, value, out_partition in records:
                    sink.add(topic, key, value, out_partition)
                written = await sink.flush()
                # The offset only once the records are acknowledged: sent while they are in
                # flight, the leader's check of their partitions with the coordinator (Kafka's
                # defence against hanging transactions) met the offset's AddOffsetsToTxn and
                # answered NOT_ENOUGH_REPLICAS, which aiokafka retries after 100 ms (README,
                # "Benchmark", 2026-12-03 (s); measured again 2026-12-04 (x): p90 110 ms per
                # cycle against 6 ms).
                if next_offset is not None:
                    await producer.send_offsets_to_transaction(
                        {TopicPartition(self.input_topic, partition): next_offset},
                        self.group_id)
            except BaseException as exc:
                # A fenced producer cannot abort (its epoch is gone; the new owner's start
                # aborted it). Any other failure aborts here; aiokafka asserts instead of
                # raising when the producer is already in a fatal state.
                if not isinstance(exc, ProducerFenced):
                    with contextlib.suppress(KafkaError, AssertionError):
                        await producer.abort_transaction()
                    # aiokafka does not reset its sequence numbers after a failed batch (no
                    # KIP-360): measured, the next transaction failed OutOfOrderSequenceNumber.
                    # A fresh producer of the same id starts a new epoch from zero.
                    await self.close([partition])
                    await self.open([partition])
                raise
            await producer.commit_transaction()
            return written
        except ProducerFenced as exc:
            await self.close([partition])
            raise FencedError(f"partition {partition} of {self.input_topic} has a new owner; "
                              "this worker's writes for it were aborted") from exc


@dataclass
class Committed:
    """What ``commit_each`` did: the last offset written per output (topic, partition), the
    input partitions that committed, those another owner had taken, and the first other
    failure (the caller raises it once it has kept what did commit)."""

    written: dict[tuple[str, int], int] = field(default_factory=dict)
    partitions: set[int] = field(default_factory=set)
    fenced: set[int] = field(default_factory=set)
    failure: BaseException | None = None


async def commit_each(outputs: FencedOutputs, records: Mapping[int, Sequence[OutputRecord]],
                      next_offsets: Mapping[int, int]) -> Committed:
    """One transaction per input partition (its ``records`` and its next offset), all at once.

    A partition another owner has taken is reported in ``fenced`` and its records are
    dropped; any other failure is reported in ``failure`` once every transaction has ended
    (the partitions that committed stay committed: their offsets went with them).
    """
    partitions = sorted(set(records) | set(next_offsets))
    results = await asyncio.gather(
        *(outputs.commit(p, records.get(p, []), next_offsets.get(p)) for p in partitions),
        return_exceptions=True)
    done = Committed()
    for partition, result in zip(partitions, results, strict=True):
        if isinstance(result, FencedError):
            done.fenced.add(partition)
            logger.warning("fenced: partition=%d has a new owner, its outputs of this "
                           "batch were dropped (records=%d)", partition,
                           len(records.get(partition, [])))
        elif isinstance(result, BaseException):
            done.failure = done.failure or result
        else:
            done.partitions.add(partition)
            for where, offset in result.items():
                # Several input partitions may write one output partition: the furthest.
                done.written[where] = max(offset, done.written.get(where, -1))
    return done


class FencedBatchSink:
    """The scoring step's sink under exactly-once: each flush commits one transaction per
    input partition, holding that partition's outputs and its consumed offset.

    Every output of an input partition goes to the partition of the same number (scores,
    dead letters, card changelog), so the output partition names the input partition.
    A partition another owner has taken is reported in ``fenced`` and its records are
    dropped; any other failure raises (the caller exits before acknowledging the batch, and
    the partitions that did commit are not read again: their offsets went with them).
    """

    atomic = True

    def __init__(self, outputs: FencedOutputs) -> None:
        self.outputs = outputs
        self.fenced: frozenset[int] = frozenset()
        self.committed: dict[tuple[str, int], int] = {}
        self._pending: dict[int, list[OutputRecord]] = defaultdict(list)
        self._consumed: dict[int, int] = {}

    def mark_consumed(self, partition: int, next_offset: int) -> None:
        self._consumed[partition] = max(next_offset, self._consumed.get(partition, 0))

    def add(self, topic: str, key: bytes | None, value: bytes | None,
            partition: int | None = None) -> None:
        if partition is None:
            raise ValueError(f"an output to {topic} needs its partition under exactly-once "
                             "(the number of the input partition it belongs to)")
        self._pending[partition].append((topic, key, value, partition))

    async def flush(self) -> dict[tuple[str, int], int]:
        pending, self._pending = self._pending, defaultdict(list)
        consumed, self._consumed = self._consumed, {}
        done = await commit_each(self.outputs, pending, consumed)
        self.fenced, self.committed = frozenset(done.fenced), done.written
        if done.failure is not None:
            raise done.failure
        return done.written
