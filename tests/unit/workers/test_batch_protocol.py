"""The scoring path's batch protocol (workers.batch_protocol), step by step, without Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from prometheus_client import CollectorRegistry

from fraudstream.monitoring.metrics import WorkerMetrics
from fraudstream.workers.batch_protocol import InputContinuity, OwnershipStarts, ScoringBatches
from fraudstream.workers.processor import RawRecord

TOPIC = "transactions"


@dataclass
class Offsets:
    """The consumer's committed offsets."""

    committed_at: dict[tuple[str, int], int] = field(default_factory=dict)

    def committed(self, topic: str, partition: int) -> int | None:
        return self.committed_at.get((topic, partition))

    def note_committed(self, topic: str, partition: int, offset: int) -> None:
        if offset > self.committed_at.get((topic, partition), -1):
            self.committed_at[(topic, partition)] = offset


@dataclass
class Stored:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


@dataclass
class Kafka:
    """What Kafka holds: the input log per partition, and which offsets have an output."""

    log: dict[int, list[int]] = field(default_factory=dict)
    log_starts: dict[int, int] = field(default_factory=dict)
    emitted_offsets: set[tuple[int, int]] = field(default_factory=set)
    reads: list[tuple[int, int, int]] = field(default_factory=list)

    async def records(self, topic: str, partition: int, start: int, stop: int) -> list[Any]:
        self.reads.append((partition, start, stop))
        return [Stored(o, b"k", b"v", 0) for o in self.log.get(partition, [])
                if start <= o < stop]

    async def log_start(self, topic: str, partition: int) -> int:
        return self.log_starts.get(partition, 0)

    async def emitted(self, partition: int, from_offset: int) -> set[int]:
        return {o for p, o in self.emitted_offsets if p == partition and o >= from_offset}


@dataclass
class Processor:
    error: Exception | None = None
    processed: list[list[tuple[int, int]]] = field(default_factory=list)
    isolated: list[list[tuple[int, int]]] = field(default_factory=list)

    async def process(self, batch: Sequence[RawRecord]) -> None:
        if self.error is not None:
            raise self.error
        self.processed.append([(r.partition, r.offset) for r in batch])

    async def process_isolated(self, batch: Sequence[RawRecord], error: Exception) -> None:
        self.isolated.append([(r.partition, r.offset) for r in batch])


def records(partition: int, *offsets: int) -> list[RawRecord]:
    return [RawRecord(TOPIC, partition, o, b"k", b"v", 0) for o in offsets]


def protocol(kafka: Kafka, processor: Processor, offsets: Offsets, *, exactly_once: bool = True,
             open_partitions: frozenset[int] = frozenset({0, 1})) -> ScoringBatches:
    metrics = WorkerMetrics.create(CollectorRegistry())
    return ScoringBatches(
        continuity=InputContinuity(TOPIC, kafka, OwnershipStarts(offsets), metrics),
        outputs_read=kafka, processor=processor, consumer=offsets,
        open_partitions=lambda: open_partitions, metrics=metrics, exactly_once=exactly_once)


def run(batches: ScoringBatches, batch: list[RawRecord]) -> None:
    asyncio.run(batches.run(batch))


def test_batches_in_order_are_scored_and_their_offsets_noted_as_committed() -> None:
    kafka, processor, offsets = Kafka(), Processor(), Offsets({(TOPIC, 0): 10})
    batches = protocol(kafka, processor, offsets)
    run(batches, records(0, 10, 11))
    run(batches, records(0, 12))
    assert processor.processed == [[(0, 10), (0, 11)], [(0, 12)]]
    assert offsets.committed_at[(TOPIC, 0)] == 13
    assert kafka.reads == []


def test_records_delivered_again_are_dropped() -> None:
    kafka, processor, offsets = Kafka(), Processor(), Offsets({(TOPIC, 0): 10})
    batches = protocol(kafka, processor, offsets)
    run(batches, records(0, 10, 11, 11))
    run(batches, records(0, 10, 11, 12))
    assert processor.processed == [[(0, 10), (0, 11)], [(0, 12)]]


def test_offsets_never_delivered_are_read_from_kafka_in_order() -> None:
    kafka = Kafka(log={0: [10, 11, 12, 13, 14]})
    processor, offsets = Processor(), Offsets({(TOPIC, 0): 10})
    batches = protocol(kafka, processor, offsets)
    run(batches, records(0, 12, 14))
    assert kafka.reads == [(0, 10, 12), (0, 13, 14)]
    assert processor.processed == [[(0, 10), (0, 11), (0, 12), (0, 13), (0, 14)]]


def test_a_partition_the_group_never_committed_starts_at_its_log_start() -> None:
    kafka = Kafka(log={1: [3, 4, 5]}, log_starts={1: 3})
    processor = Processor()
    batches = protocol(kafka, processor, Offsets())
    run(batches, records(1, 5))
    assert processor.processed == [[(1, 3), (1, 4), (1, 5)]]


def test_a_settled_start_overrides_what_the_consumer_read_at_the_rebalance() -> None:
    # The predecessor's last transaction committed 20 after the consumer read 10.
    kafka, processor, offsets = Kafka(), Processor(), Offsets({(TOPIC, 0): 10})
    batches = protocol(kafka, processor, offsets)
    batches.continuity.starts.settle(TOPIC, {(TOPIC, 0): 20})
    run(batches, records(0, 18, 19, 20))
    assert processor.processed == [[(0, 20)]]


def test_a_fenced_partition_is_not_noted_as_committed() -> None:
    kafka, processor = Kafka(), Processor()
    offsets = Offsets({(TOPIC, 0): 10, (TOPIC, 1): 0})
    batches = protocol(kafka, processor, offsets, open_partitions=frozenset({1}))
    run(batches, records(0, 10) + records(1, 0))
    assert offsets.committed_at == {(TOPIC, 0): 10, (TOPIC, 1): 1}


def test_at_least_once_a_takeover_skips_what_the_predecessor_wrote() -> None:
    kafka = Kafka(emitted_offsets={(0, 10), (0, 11)})
    processor, offsets = Processor(), Offsets({(TOPIC, 0): 10})
    batches = protocol(kafka, processor, offsets, exactly_once=False)
    batches.verify_takeover({0})
    run(batches, records(0, 10, 11, 12))
    assert processor.processed == [[(0, 12)]]
    assert offsets.committed_at[(TOPIC, 0)] == 10  # Faust commits at least once


@pytest.mark.parametrize("error", [MessageSizeTooLargeError(), RuntimeError("a bug")])
def test_a_record_error_redoes_only_what_has_no_output(error: Exception) -> None:
    kafka = Kafka(emitted_offsets={(0, 10)})
    processor, offsets = Processor(error=error), Offsets({(TOPIC, 0): 10})
    batches = protocol(kafka, processor, offsets)
    run(batches, records(0, 10, 11, 12))
    assert processor.isolated == [[(0, 11), (0, 12)]]


def test_kafka_being_unavailable_raises_before_the_cursor_moves() -> None:
    kafka, offsets = Kafka(), Offsets({(TOPIC, 0): 10})
    batches = protocol(kafka, Processor(error=KafkaConnectionError()), offsets)
    with pytest.raises(KafkaConnectionError):
        run(batches, records(0, 10))
    assert offsets.committed_at[(TOPIC, 0)] == 10
    processor = Processor()
    batches.processor = processor
    run(batches, records(0, 10))  # handed over again: not taken for a redelivery
    assert processor.processed == [[(0, 10)]]
