"""The scoring step with in-memory tables and a recording sender (no Kafka)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from features import FEATURE_NAMES
from model_registry.artifact import LoadedModel, ModelManifest
from monitoring.metrics import WorkerMetrics
from workers.output import ListSink
from workers.processor import RawRecord, ScoringProcessor, Topics
from workers.scoring import Scorer
from workers.state_tables import DictTable


class AmountModel:
    """Fraud probability grows with the amount (first feature)."""

    n_features_in_ = len(FEATURE_NAMES)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = np.clip(x[:, 0] / 1000.0, 0, 1)
        return np.column_stack([1 - p, p])


def scorer() -> Scorer:
    manifest = ModelManifest(version="v-test", family="test", feature_names=list(FEATURE_NAMES),
                             sha256="", created_at="", review_threshold=0.3,
                             decline_threshold=0.8)
    return Scorer(LoadedModel(manifest, AmountModel()))


class Harness:
    def __init__(self) -> None:
        self.sink = ListSink()
        self.cards = DictTable()
        self.registry = CollectorRegistry()
        self.processor = ScoringProcessor(
            scorer=scorer(), cards=self.cards, merchants={}, sink=self.sink,
            topics=Topics("scores", "dlq"), metrics=WorkerMetrics.create(self.registry),
            worker_name="w-test", label_delay_days=7, max_message_bytes=2048,
            clock=lambda: 1_800_000_000.0)
        self.offset = 0

    def record(self, value: bytes | dict[str, Any], key: bytes | None = None,
               offset: int | None = None) -> RawRecord:
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        if key is None and isinstance(value, dict):
            key = str(value.get("card_id", "")).encode()
        if offset is None:
            self.offset += 1
            offset = self.offset
        return RawRecord("transactions", 0, offset, key, raw, 1_799_999_999_000)

    def run(self, batch: list[RawRecord]) -> None:
        asyncio.run(self.processor.process(batch))

    def by_topic(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(v) for t, _k, v, _p in self.sink.records if t == topic]


def tx(i: int, amount: float = 10.0, card: str = "C1") -> dict[str, Any]:
    return {"transaction_id": f"t{i}", "timestamp": "2026-11-01T10:00:00Z", "card_id": card,
            "merchant_id": "M1", "amount": amount}


def test_every_record_lands_in_exactly_one_output_with_the_right_reason() -> None:
    h = Harness()
    batch = [h.record(tx(1)), h.record(tx(2, 900.0)), h.record(tx(3, 500.0, "C2")),
             h.record(b"{broken"), h.record({**tx(4), "amount": -5}),
             h.record({**tx(5), "amount": "NaN"}), h.record({"transaction_id": "t6"}, b"k"),
             h.record(tx(1)),  # duplicate id, another offset
             h.record(tx(7), key=b"wrong-key"), h.record({**tx(8), "pad": "x" * 3000})]
    h.run(batch)
    scores = h.by_topic("scores")
    dlq = h.by_topic("dlq")
    assert len(scores) + len(dlq) == len(batch)
    assert {s["transaction_id"]: s["decision"] for s in scores} == {
        "t1": "approve", "t2": "decline", "t3": "review"}
    assert [d["error"] for d in dlq] == ["invalid_json", "bad_amount", "bad_amount",
                                         "missing_field", "duplicate_transaction", "bad_key",
                                         "oversized"]
    assert base64.b64decode(dlq[0]["payload_b64"]) == b"{broken"
    assert all(d["reason"] and d["offset"] > 0 and d["topic"] == "transactions" for d in dlq)
    assert all(s["model_version"] == "v-test" and s["worker"] == "w-test" for s in scores)
    assert h.registry.get_sample_value("fraudstream_transactions_scored_total") == 3
    assert h.registry.get_sample_value("fraudstream_transactions_dead_lettered_total",
                                       {"error": "bad_amount"}) == 2


def test_replayed_record_gets_its_original_decision_again() -> None:
    h = Harness()
    first = h.record(tx(1, 900.0))
    h.run([first])
    h.run([first])  # same partition and offset: a redelivery after a crash
    scores = h.by_topic("scores")
    assert [s["decision"] for s in scores] == ["decline", "decline"]
    assert scores[0]["score"] == scores[1]["score"]
    assert h.by_topic("dlq") == []


def test_card_state_carries_over_batches() -> None:
    h = Harness()
    h.run([h.record(tx(1, 10.0)), h.record(tx(2, 20.0))])
    h.run([h.record(tx(3, 30.0))])
    state = h.cards.data[b"C1"][0]
    assert sum(n for _d, n, _s in state[2]) == 3


@pytest.mark.parametrize("bad", [b"", b"null", b"\xff\xfe"])
def test_odd_bytes_are_dead_lettered(bad: bytes) -> None:
    h = Harness()
    h.run([h.record(bad, key=b"C1")])
    assert len(h.by_topic("dlq")) == 1


def test_feature_values_are_emitted_only_when_asked() -> None:
    h = Harness()
    h.run([h.record(tx(1, 10.0)), h.record(tx(2, 30.0))])
    assert all("features" not in s for s in h.by_topic("scores"))
    h = Harness()
    h.processor.emit_features = True
    h.run([h.record(tx(1, 10.0)), h.record(tx(2, 30.0))])
    first, second = (s["features"] for s in h.by_topic("scores"))
    assert list(second) == list(FEATURE_NAMES)
    assert (first["amount"], second["amount"]) == (10.0, 30.0)
    assert (second["card_nb_tx_1d"], second["card_avg_amount_1d"]) == (2.0, 20.0)
