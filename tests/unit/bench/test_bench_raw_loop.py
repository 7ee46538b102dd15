"""The benchmark's ceiling does the workers' work: card changelog, labels, merchant states."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from fraudstream.bench.raw_loop import RawLoop, shared_partitions
from fraudstream.features import MerchantState
from fraudstream.settings import Settings
from fraudstream.workers.output import ListSink
from fraudstream.workers.processor import RawRecord
from tests.unit.workers.test_processor import scorer

SETTINGS = Settings(app_id="bench-x", topic_transactions="tx", topic_labels="labels",
                    topic_scores="scores", topic_dlq="dlq")
NOW_MS = 1_799_999_999_000


def tx(i: int, card: str, merchant: str) -> RawRecord:
    body = {"transaction_id": f"t{i}", "timestamp": "2026-11-01T10:00:00Z", "card_id": card,
            "merchant_id": merchant, "amount": 12.5}
    return RawRecord("tx", 0, i, card.encode(), orjson.dumps(body), NOW_MS)


def label(i: int, merchant: str, is_fraud: int, timestamp: str) -> RawRecord:
    body = {"transaction_id": f"t{i}", "card_id": "C1", "merchant_id": merchant,
            "is_fraud": is_fraud, "timestamp": timestamp}
    return RawRecord("labels", 1, i, b"C1", orjson.dumps(body), NOW_MS)


def test_a_batch_writes_each_card_to_the_changelog_before_its_scores() -> None:
    sink = ListSink()
    loop = RawLoop(SETTINGS, scorer(), sink)
    asyncio.run(loop.handle([tx(1, "C1", "M1"), tx(2, "C1", "M1"), tx(3, "C2", "M1")]))
    topics = [t for t, _k, _v, _p in sink.records]
    assert topics == ["bench-x-cards-changelog"] * 2 + ["scores"] * 3
    cards = {k: orjson.loads(v) for t, k, v, _p in sink.records if t.endswith("changelog")}
    assert set(cards) == {b"C1", b"C2"}


def test_labels_become_one_merchant_state_per_merchant_and_batch() -> None:
    sink = ListSink()
    loop = RawLoop(SETTINGS, scorer(), sink)
    asyncio.run(loop.handle([
        label(1, "M1", 0, "2026-10-01T10:00:00Z"), label(2, "M1", 1, "2026-10-01T10:00:05Z"),
        label(3, "M2", 0, "2026-10-02T00:00:00Z"), RawRecord("labels", 1, 4, b"C1", b"{", 0)]))
    written = {k: v for t, k, v, p in sink.records if t == "bench-x-merchants-changelog"}
    m1, m2 = MerchantState(), MerchantState()
    m1.observe_label(1_790_848_800, False)
    m1.observe_label(1_790_848_805, True)
    m2.observe_label(1_790_899_200, False)
    assert set(written) == {b"M1", b"M2"}
    assert MerchantState.from_wire(orjson.loads(written[b"M1"])) == m1
    assert MerchantState.from_wire(orjson.loads(written[b"M2"])) == m2
    assert (loop.labels_applied, loop.labels_rejected) == (3, 1)
    # The scoring step reads what the labels wrote.
    assert MerchantState.from_wire(loop.merchants[b"M1"]) == m1


def test_two_processes_read_disjoint_halves_of_both_topics() -> None:
    s = {"tx": {4, 0, 2, 1, 3}, "labels": range(5)}
    first, second = shared_partitions(s, (0, 2)), shared_partitions(s, (1, 2))
    assert [(tp.topic, tp.partition) for tp in first] == [
        ("tx", 0), ("tx", 2), ("tx", 4), ("labels", 0), ("labels", 2), ("labels", 4)]
    assert [(tp.topic, tp.partition) for tp in second] == [
        ("tx", 1), ("tx", 3), ("labels", 1), ("labels", 3)]
    assert len(shared_partitions(s, (0, 1))) == 10


def test_a_process_outside_its_count_is_refused() -> None:
    with pytest.raises(ValueError):
        shared_partitions({"tx": range(5)}, (2, 2))
