"""The worker's batch step: what exits the process and what is dead-lettered instead."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from prometheus_client import CollectorRegistry

from fraudstream.monitoring.metrics import WorkerMetrics
from fraudstream.workers import app as worker_app
from fraudstream.workers.app import WorkerApp
from fraudstream.workers.batch_protocol import InputContinuity, OwnershipStarts, ScoringBatches
from fraudstream.workers.merchant_labels import merchant_label
from fraudstream.workers.processor import RawRecord
from tests.unit.workers.test_batch_protocol import Kafka, Offsets

NOW = 1_800_000_000.0


class Exited(Exception):
    pass


class FakeProcessor:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.isolated: list[list[RawRecord]] = []

    async def process(self, batch: Sequence[RawRecord]) -> None:
        raise self.error

    async def process_isolated(self, batch: Sequence[RawRecord], error: Exception) -> None:
        self.isolated.append(list(batch))


class FakeTakeover:
    """Says which input offsets already have an output (as read from the output topics)."""

    def __init__(self, done: set[int]) -> None:
        self.done = done

    async def emitted(self, partition: int, from_offset: int) -> set[int]:
        return {o for o in self.done if o >= from_offset}


def worker(error: Exception, done: frozenset[int] = frozenset()) -> tuple[WorkerApp, FakeProcessor]:
    w = WorkerApp.__new__(WorkerApp)
    processor = FakeProcessor(error)
    w_any: Any = w
    w_any.processor = processor
    w_any.state_lock = asyncio.Lock()
    metrics = WorkerMetrics.create(CollectorRegistry())
    offsets = Offsets({("transactions", 0): 5})
    w_any.scoring = ScoringBatches(
        continuity=InputContinuity("transactions", Kafka(), OwnershipStarts(offsets), metrics),
        outputs_read=FakeTakeover(set(done)), processor=processor, consumer=offsets,
        open_partitions=frozenset, metrics=metrics, exactly_once=False)
    return w, processor


@pytest.fixture
def no_exit(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise Exited()

    monkeypatch.setattr(worker_app.os, "_exit", fake_exit)
    return codes


BATCH = [RawRecord("transactions", 0, o, b"C1", b"{}", 0) for o in (5, 6, 7)]


def test_a_record_kafka_refuses_is_dead_lettered_not_an_exit(no_exit: list[int]) -> None:
    w, processor = worker(MessageSizeTooLargeError(), done=frozenset({5}))
    asyncio.run(w._process_or_exit(list(BATCH)))
    assert no_exit == []  # exited 70 before, and again on every restart
    # Offset 5's output was written before the error: only 6 and 7 are redone.
    assert [[r.offset for r in b] for b in processor.isolated] == [[6, 7]]


def test_kafka_being_unavailable_still_exits(no_exit: list[int]) -> None:
    w, processor = worker(KafkaConnectionError())
    with pytest.raises(Exited):
        asyncio.run(w._process_or_exit(list(BATCH)))
    assert no_exit == [worker_app.EXIT_KAFKA_UNAVAILABLE] and processor.isolated == []


def label(**fields: Any) -> bytes:
    body = {"transaction_id": "t1", "card_id": "C1", "merchant_id": "M1", "is_fraud": 1,
            "timestamp": "2026-11-01T10:00:00Z", "reported_at": "2026-11-20T10:00:00Z"}
    return orjson.dumps({**body, **fields})


def test_labels_follow_the_identifier_and_clock_rules() -> None:
    assert merchant_label(label(), NOW, 300.0) is not None
    from datetime import UTC, datetime

    def ahead(s: float) -> str:
        return datetime.fromtimestamp(NOW + s, UTC).isoformat().replace("+00:00", "Z")

    assert merchant_label(label(timestamp=ahead(200)), NOW, 300.0) is not None
    for bad in (label(timestamp=ahead(3600)),  # accepted up to two days ahead before
                label(merchant_id="M\x1b[2J"), label(card_id="C\n1"),
                label(transaction_id="t\u202e1"), label(merchant_id="M" * 129),
                label(is_fraud=2), label(merchant_id=7), b"[1]", b"\xff"):
        assert merchant_label(bad, NOW, 300.0) is None


def test_after_a_bug_only_records_without_an_output_are_redone(no_exit: list[int]) -> None:
    w, processor = worker(RuntimeError("a bug"), done=frozenset({5, 6}))
    asyncio.run(w._process_or_exit(list(BATCH)))
    assert no_exit == []
    assert [[r.offset for r in b] for b in processor.isolated] == [[7]]


def test_record_errors_are_told_from_kafka_being_down_also_when_wrapped() -> None:
    from faust.exceptions import ProducerSendError

    from fraudstream.workers.output import is_record_error

    def wrapped(inner: Exception) -> Exception:
        try:
            raise ProducerSendError("send failed") from inner
        except ProducerSendError as exc:
            return exc

    assert is_record_error(MessageSizeTooLargeError())
    assert is_record_error(wrapped(MessageSizeTooLargeError()))
    assert not is_record_error(KafkaConnectionError())
    assert not is_record_error(wrapped(KafkaConnectionError()))
    assert not is_record_error(RuntimeError("a bug"))
