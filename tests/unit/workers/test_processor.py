"""The scoring step with in-memory tables and a recording sender (no Kafka)."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from fraudstream.features import FEATURE_NAMES
from fraudstream.model_registry.artifact import LoadedModel, ModelManifest
from fraudstream.monitoring.metrics import WorkerMetrics
from fraudstream.workers.merchant_states import MerchantStates
from fraudstream.workers.output import ListSink
from fraudstream.workers.processor import RawRecord, ScoringProcessor, Topics
from fraudstream.workers.scoring import Scorer
from fraudstream.workers.state_tables import DictTable


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
            scorer=scorer(), cards=self.cards, merchants=MerchantStates({}), sink=self.sink,
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


NOW = 1_800_000_000.0


def when(seconds_from_now: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(NOW + seconds_from_now, UTC).isoformat().replace("+00:00", "Z")


def test_a_huge_key_makes_a_small_dead_letter_with_its_hash() -> None:
    import hashlib

    h = Harness()
    key = b"K" * 600_000
    h.run([h.record(tx(1), key=key)])
    [(topic, out_key, value, partition)] = h.sink.records
    assert topic == "dlq" and partition == 0
    assert len(value) <= 2048 - 512  # 3.6 MB before: the broker refused it, the worker exited
    assert out_key == b"sha256:" + hashlib.sha256(key).hexdigest().encode()
    letter = orjson.loads(value)
    assert letter["error"] == "bad_key"
    assert (letter["key_bytes"], letter["key_sha256"]) == (600_000,
                                                          hashlib.sha256(key).hexdigest())
    assert "600000-byte key" in letter["reason"] and "KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK" \
        not in letter["reason"]


def test_a_dead_letter_of_a_record_that_would_not_fit_keeps_an_excerpt_and_hash() -> None:
    import hashlib

    h = Harness()
    raw = orjson.dumps({**tx(1), "pad": "y" * 1900})  # under 2048: valid size, bad amount
    raw = raw.replace(b'"amount":10.0', b'"amount":-1')
    h.run([h.record(raw, key=b"C1")])
    [(_t, _k, value, _p)] = h.sink.records
    letter = orjson.loads(value)
    assert len(value) <= 2048 - 512 and letter["error"] == "bad_amount"
    assert letter["payload_truncated"] is True and letter["payload_bytes"] == len(raw)
    assert letter["payload_sha256"] == hashlib.sha256(raw).hexdigest()
    excerpt = base64.b64decode(letter["payload_b64"])
    assert 0 < len(excerpt) < len(raw) and raw.startswith(excerpt)
    assert "excerpt" in letter["reason"]


def test_every_dead_letter_fits_the_limit() -> None:
    h = Harness()
    batch = [h.record(b"\x00" * 2047, key=b"k" * 5000), h.record(b"[" * 2000, key=b"C1"),
             h.record({**tx(1), "card_id": "\u202e" * 100}, key=b"x" * 100),
             h.record(orjson.dumps({**tx(2), "amount": "é" * 600}), key=b"C1")]
    h.run(batch)
    assert len(h.sink.records) == 4
    assert all(len(v) + len(k or b"") <= 2048 for _t, k, v, _p in h.sink.records)


def test_a_record_from_the_future_is_dead_lettered_and_evicts_nothing() -> None:
    h = Harness()
    past = [{**tx(i), "timestamp": when(-20 * 3600 + i * 60)} for i in range(3)]
    h.run([h.record(t) for t in past])
    h.run([h.record({**tx(10), "timestamp": when(48 * 3600 - 60)})])  # accepted before
    h.run([h.record({**tx(11), "timestamp": when(240)})])  # within the skew
    h.run([h.record({**tx(12), "timestamp": when(-40 * 86_400)})])  # old and late
    h.processor.emit_features = True
    h.run([h.record({**tx(13), "timestamp": when(0)})])
    assert [d["error"] for d in h.by_topic("dlq")] == ["bad_timestamp"]
    last = h.by_topic("scores")[-1]
    # The three from 20 hours ago and this one; the one 4 minutes ahead is not in its window.
    assert last["features"]["card_nb_tx_1d"] == 4.0


def test_a_record_on_another_partition_than_its_key_is_dead_lettered() -> None:
    from aiokafka.partitioner import murmur2

    h = Harness()
    h.processor.partitions = 4
    right = (murmur2(b"C1") & 0x7FFFFFFF) % 4
    wrong = (right + 1) % 4

    def on(partition: int, i: int) -> RawRecord:
        rec = h.record(tx(i))
        return RawRecord(rec.topic, partition, rec.offset, rec.key, rec.value, rec.timestamp_ms)

    h.run([on(right, 1), on(wrong, 2), on(right, 3)])
    assert [s["transaction_id"] for s in h.by_topic("scores")] == ["t1", "t3"]
    [letter] = h.by_topic("dlq")
    assert letter["error"] == "wrong_partition" and f"partition {right} of 4" in letter["reason"]
    assert "murmur2" in letter["reason"]
    assert [p for t, _k, _v, p in h.sink.records if t == "dlq"] == [wrong]


def test_card_numbers_are_written_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h = Harness()
    secret = {"pan": "4111111111111111", "cvv": "737", "card": {"card_number": "5500005555555559"}}
    h.run([h.record({**tx(1), **secret}), h.record({**tx(2), **secret, "amount": -1}),
           h.record(orjson.dumps({**tx(3), **secret})[:-1] + b",", key=b"C1")])
    assert len(h.sink.records) == 3
    for _topic, _key, value, _p in h.sink.records:
        body = orjson.loads(value)
        text = value + base64.b64decode(body.get("payload_b64", ""))
        assert b"4111111111111111" not in text and b"737" not in text
        assert b"5500005555555559" not in text
    letters = h.by_topic("dlq")
    assert all(d["payload_redacted"] and "removed" in d["reason"] for d in letters)
    kept = orjson.loads(base64.b64decode(letters[0]["payload_b64"]))
    assert kept["transaction_id"] == "t2" and "pan" not in kept and kept["card"] == {}
    assert caplog.records and "4111" not in caplog.text and "737" not in caplog.text


class RefusingSink(ListSink):
    """A sink whose flush fails like Kafka: too-large scores refused, or Kafka unavailable."""

    def __init__(self, limit: int, down: bool = False) -> None:
        super().__init__()
        self.records: list[tuple[str, bytes | None, bytes, int | None]] = []
        self.pending: list[tuple[str, bytes | None, bytes, int | None]] = []
        self.limit, self.down = limit, down

    def add(self, topic: str, key: bytes | None, value: bytes | None,
            partition: int | None = None) -> None:
        self.pending.append((topic, key, value or b"", partition))

    async def flush(self) -> dict[tuple[str, int], int]:
        from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

        pending, self.pending = self.pending, []
        if self.down and any(t == "scores" for t, _k, _v, _p in pending):
            raise KafkaConnectionError("the scores partition's leader is away")
        if any(len(v) > self.limit for t, _k, v, _p in pending if t == "scores"):
            raise MessageSizeTooLargeError()
        self.records += pending
        return {}


def test_an_output_kafka_refuses_is_dead_lettered_in_part() -> None:
    h = Harness()
    sink = RefusingSink(limit=100)  # every score is larger: as if the topic took less
    h.processor.sink = sink
    batch = [h.record(tx(1)), h.record(b"{bad", key=b"C1")]
    with pytest.raises(Exception) as failed:
        h.run(batch)
    asyncio.run(h.processor.process_isolated(batch, failed.value))
    letters = [orjson.loads(v) for t, _k, v, _p in sink.records if t == "dlq"]
    assert sorted(d["error"] for d in letters) == ["invalid_json", "output_rejected"]
    refused = next(d for d in letters if d["error"] == "output_rejected")
    assert refused["offset"] == batch[0].offset and refused["payload_b64"] == ""
    assert not [v for t, _k, v, _p in sink.records if t == "scores"]


def test_kafka_being_down_is_not_blamed_on_a_record() -> None:
    from aiokafka.errors import KafkaConnectionError

    h = Harness()
    sink = h.processor.sink = RefusingSink(limit=10**6, down=True)
    batch = [h.record(tx(1))]
    with pytest.raises(KafkaConnectionError):
        asyncio.run(h.processor.process_isolated(batch, KafkaConnectionError()))
    # Its score may be written by the time Kafka says so: the worker exits, nothing else.
    assert sink.records == []


def test_a_score_is_bounded_whatever_its_valid_ids() -> None:
    h = Harness()
    h.processor.emit_features = True
    h.processor.max_bytes = 65536
    widest = "\U0001f4b3" * 128  # the longest valid id: 128 characters of 4 bytes
    h.run([h.record({**tx(1), "transaction_id": widest, "card_id": widest,
                     "merchant_id": widest, "pad": "p" * 500})])
    [(topic, key, value, _p)] = h.sink.records
    assert topic == "scores" and len(key or b"") == 512
    assert len(value) < 4096 and b"pad" not in value


def test_a_record_that_fails_after_its_score_is_written_is_not_dead_lettered() -> None:
    h = Harness()
    calls = {"n": 0}

    def clock() -> float:
        # Read at a batch's start and once its outputs are acknowledged: fails at the latter.
        calls["n"] += 1
        if calls["n"] in (2, 5):
            raise RuntimeError("a bug after the output was acknowledged")
        return NOW

    h.processor.clock = clock
    batch = [h.record(tx(1))]
    with pytest.raises(RuntimeError) as failed:
        h.run(batch)
    asyncio.run(h.processor.process_isolated(batch, failed.value))
    assert calls["n"] == 5
    # The score, then its replay (the state remembers the decision); before, a dead letter too.
    assert [t for t, _k, _v, _p in h.sink.records] == ["scores", "scores"]


class TransactionSink(ListSink):
    """An atomic sink: counts flushes and reports one partition fenced."""

    atomic = True

    def __init__(self, fenced: frozenset[int]) -> None:
        super().__init__()
        self.flushes = 0
        self.lost = fenced

    async def flush(self) -> dict[tuple[str, int], int]:
        self.flushes += 1
        self.fenced = self.lost
        return {}


def test_under_transactions_a_batch_is_one_flush_with_its_offsets() -> None:
    h = Harness()
    sink = h.processor.sink = TransactionSink(frozenset({1}))
    batch = [h.record(tx(1)), RawRecord("transactions", 1, 40, b"C9",
                                        orjson.dumps(tx(2, card="C9")), 1_799_999_999_000)]
    h.run(batch)
    assert sink.flushes == 1  # state, outputs and offsets together, not state first
    assert sink.consumed == {0: batch[0].offset + 1, 1: 41}
    assert {t for t, _k, _v, _p in sink.records} == {"scores"}
    # Partition 1 was fenced: its record is counted as such, not as scored (which state
    # reaches the store is ChangelogTable.apply's, tests/unit/workers/test_card_store.py).
    assert h.registry.get_sample_value("fraudstream_fenced_records_total") == 1
    assert h.registry.get_sample_value("fraudstream_transactions_scored_total") == 1


class RefusesNaN(AmountModel):
    """Like scikit-learn's linear models: NaN input raises."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if not np.isfinite(x).all():
            raise ValueError("Input X contains NaN.")
        return super().predict_proba(x)


def test_missing_feature_values_are_counted_even_when_the_model_refuses_them() -> None:
    h = Harness()
    manifest = h.processor.scorer.model.manifest
    h.processor.scorer = Scorer(LoadedModel(manifest, RefusesNaN()))
    h.run([h.record(tx(1))])
    get = h.registry.get_sample_value
    assert get("fraudstream_missing_values_total", {"feature": "card_nb_tx_7d"}) is None

    # A feature bug: the feature computed as NaN.
    h.processor.guard.chaos.nan_columns = (FEATURE_NAMES.index("card_nb_tx_7d"),)
    h.run([h.record(tx(2)), h.record(tx(3, card="C2"))])
    assert get("fraudstream_missing_values_total", {"feature": "card_nb_tx_7d"}) == 2
    assert get("fraudstream_missing_values_total", {"feature": "amount"}) is None
    scores = h.by_topic("scores")
    assert [s["degraded"] for s in scores] == [False, True, True]  # the rules answered


def test_a_busy_card_keeps_each_decision_until_its_label_is_due() -> None:
    """Labels come the label delay (7 days here) after their transaction: a card that made
    more than 32 transactions meanwhile must still hold the first decision then, and drop
    it once the delay and a day of slack have passed (live performance matches labels
    against these, by transaction id)."""
    from fraudstream.workers.card_record import CardRecord

    h = Harness()
    start = 1_799_000_000 - 9 * 86_400
    for i in range(60):  # one every 3 hours: 60 in 7.5 days
        at = start + i * 3 * 3_600
        stamp = np.datetime_as_string(np.datetime64(at, "s")) + "Z"
        h.run([h.record({**tx(i), "timestamp": stamp})])
    stored = orjson.dumps(h.cards.data[b"C1"])
    found = CardRecord.decision_in(stored, "t0")
    assert found is not None and found.decision == "approve", "the label of t0 is due now"
    for i in range(60, 80):  # 2.5 more days: t0 is past the delay and the slack
        at = start + i * 3 * 3_600
        stamp = np.datetime_as_string(np.datetime64(at, "s")) + "Z"
        h.run([h.record({**tx(i), "timestamp": stamp})])
    stored = orjson.dumps(h.cards.data[b"C1"])
    assert CardRecord.decision_in(stored, "t0") is None
    assert CardRecord.decision_in(stored, "t79") is not None
