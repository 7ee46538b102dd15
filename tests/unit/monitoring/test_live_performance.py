"""Live precision, recall and AP from labels matched to remembered decisions; consumer lag."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest
from prometheus_client import CollectorRegistry

from fraudstream.monitoring.consumer_lag import ConsumerLag
from fraudstream.monitoring.live_performance import LivePerformance, publish_validation
from fraudstream.monitoring.metrics import WorkerMetrics


def label(tx: str, fraud: int) -> bytes:
    return orjson.dumps({"transaction_id": tx, "card_id": "C1", "merchant_id": "M1",
                         "is_fraud": fraud, "timestamp": "2018-04-01T00:00:00Z"})


def test_labels_give_precision_recall_and_average_precision_per_model_version() -> None:
    m = WorkerMetrics.create(CollectorRegistry())
    decisions = {"t1": (0.9, "decline", "v1"), "t2": (0.6, "review", "v1"),
                 "t3": (0.2, "approve", "v1"), "t4": (0.1, "approve", "v1"),
                 "t5": (0.95, "decline", "v2")}
    live = LivePerformance(m, lambda card, tx: decisions.get(tx), publish_interval_s=0)
    # v1: t1 fraud+flagged (tp), t2 genuine+flagged (fp), t3 fraud+approved (fn), t4 tn
    outcomes = [live.observe_label(b"C1", label(tx, f))
                for tx, f in [("t1", 1), ("t2", 0), ("t3", 1), ("t4", 0), ("t5", 1)]]
    assert outcomes == ["matched"] * 5
    assert live.observe_label(b"C1", label("unknown", 1)) == "unmatched"
    assert live.observe_label(b"C1", b"{not json") == "malformed"
    assert live.observe_label(b"C1", orjson.dumps({"transaction_id": "t1", "is_fraud": 7})) \
        == "malformed"
    live.maybe_publish()
    get = m.registry.get_sample_value
    assert get("fraudstream_live_precision", {"model_version": "v1"}) == pytest.approx(0.5)
    assert get("fraudstream_live_recall", {"model_version": "v1"}) == pytest.approx(0.5)
    # Scores ranked 0.9 (fraud), 0.6, 0.2 (fraud), 0.1: AP = (1/1 + 2/3) / 2
    assert get("fraudstream_live_average_precision", {"model_version": "v1"}) == \
        pytest.approx((1 + 2 / 3) / 2)
    assert get("fraudstream_live_precision", {"model_version": "v2"}) == 1.0
    for outcome, n in {"tp": 1, "fp": 1, "fn": 1, "tn": 1}.items():
        assert get("fraudstream_live_outcomes_total",
                   {"model_version": "v1", "outcome": outcome}) == n
    # Every outcome series exists from the first label on, at 0 when not seen yet.
    assert get("fraudstream_live_outcomes_total", {"model_version": "v2", "outcome": "fp"}) == 0
    assert get("fraudstream_labels_matched_total", {"outcome": "matched"}) == 5
    assert get("fraudstream_labels_matched_total", {"outcome": "unmatched"}) == 1
    assert get("fraudstream_labels_matched_total", {"outcome": "malformed"}) == 2


def test_labelled_scores_are_exported_for_the_groups_average_precision() -> None:
    """What the recording rule sums over workers: each labelled score in a histogram by
    label, and each fraud under the edge just below its score (tests/monitoring/rules:
    model_tests.yml computes the group's figure from these)."""
    m = WorkerMetrics.create(CollectorRegistry())
    live = LivePerformance(m, lambda card, tx: None, publish_interval_s=0)
    for score, fraud in [(0.93, True), (0.5, True), (0.0, True), (0.3, False)]:
        live.record("v1", score, score > 0.4, fraud)
    get = m.registry.get_sample_value
    frauds = {edge: get("fraudstream_live_frauds_total", {"model_version": "v1", "above": edge})
              for edge in ("0.0", "0.4", "0.9", "0.95")}
    assert frauds == {"0.0": 1, "0.4": 1, "0.9": 1, "0.95": 0}  # 0.5 is in (0.4, 0.5]
    assert get("fraudstream_live_labelled_score_count",
               {"model_version": "v1", "is_fraud": "1"}) == 3
    assert get("fraudstream_live_labelled_score_bucket",
               {"model_version": "v1", "is_fraud": "1", "le": "0.5"}) == 2
    assert get("fraudstream_live_labelled_score_bucket",
               {"model_version": "v1", "is_fraud": "0", "le": "0.3"}) == 1


def test_window_keeps_only_the_most_recent_labelled_decisions() -> None:
    m = WorkerMetrics.create(CollectorRegistry())
    live = LivePerformance(m, lambda card, tx: None, window=2, publish_interval_s=0)
    live.record("v", 0.9, True, False)  # fp, then two tps push it out
    live.record("v", 0.9, True, True)
    live.record("v", 0.8, True, True)
    live.publish()
    assert m.registry.get_sample_value("fraudstream_live_precision",
                                       {"model_version": "v"}) == 1.0


def test_consumer_lag_per_assigned_partition_and_removed_when_revoked() -> None:
    m = WorkerMetrics.create(CollectorRegistry())
    high = {0: 100, 1: 50, 2: None}
    committed = {0: 40, 1: None}
    lag = ConsumerLag(m.consumer_lag, lambda tp: high[tp.partition],
                      lambda tp: committed.get(tp.partition))
    tps = [SimpleNamespace(partition=p) for p in (0, 1, 2)]
    asyncio.run(lag.update(tps))
    get = m.registry.get_sample_value
    assert get("fraudstream_consumer_lag", {"partition": "0"}) == 60
    assert get("fraudstream_consumer_lag", {"partition": "1"}) == 50
    assert get("fraudstream_consumer_lag", {"partition": "2"}) is None
    asyncio.run(lag.update(tps[1:]))
    assert get("fraudstream_consumer_lag", {"partition": "0"}) is None


def lag_of(m: WorkerMetrics) -> float | None:
    return m.registry.get_sample_value("fraudstream_consumer_lag", {"partition": "0"})


def test_a_standing_backlog_without_records_is_no_lag_and_is_read_once() -> None:
    # A transactional producer upstream leaves a commit marker after the last record: the
    # worker commits 100 (after the record at 99), the marker is at 100, the end is 101.
    m = WorkerMetrics.create(CollectorRegistry())
    high, committed, records = [101], [100], {99}
    reads: list[tuple[int, int]] = []

    async def holds(tp: object, start: int, end: int) -> bool:
        reads.append((start, end))
        return any(start <= o < end for o in records)

    lag = ConsumerLag(m.consumer_lag, lambda tp: high[0], lambda tp: committed[0], holds)
    tps = [SimpleNamespace(partition=0)]
    asyncio.run(lag.update(tps))
    assert lag_of(m) == 1 and reads == []  # not yet known to stand still
    for _ in range(3):
        asyncio.run(lag.update(tps))
        assert lag_of(m) == 0
    assert reads == [(100, 101)], "read once per standing backlog"
    # A record after the marker: a backlog again, shown at once, read once it stands still.
    high[0], records = 102, {99, 101}
    asyncio.run(lag.update(tps))
    assert lag_of(m) == 2
    asyncio.run(lag.update(tps))
    assert lag_of(m) == 2 and reads[-1] == (100, 102)


def test_a_moving_backlog_is_not_read_and_a_failed_read_counts_as_records() -> None:
    m = WorkerMetrics.create(CollectorRegistry())
    high, committed = [500], [0]
    reads = 0

    async def unreachable(tp: object, start: int, end: int) -> bool:
        nonlocal reads
        reads += 1
        raise TimeoutError("no broker answered")

    lag = ConsumerLag(m.consumer_lag, lambda tp: high[0], lambda tp: committed[0], unreachable)
    tps = [SimpleNamespace(partition=0)]
    for step in range(1, 4):
        committed[0], high[0] = 100 * step, 100 * step + 50
        asyncio.run(lag.update(tps))
    assert reads == 0 and lag_of(m) == 50
    asyncio.run(lag.update(tps))
    assert reads == 1 and lag_of(m) == 50


def test_a_failing_lookup_counts_the_label_unmatched() -> None:
    m = WorkerMetrics.create(CollectorRegistry())

    def broken(card: bytes, tx: str) -> None:
        raise ValueError("corrupt table entry")

    live = LivePerformance(m, broken)
    assert live.observe_label(b"C1", label("t1", 1)) == "unmatched"


def test_validation_figures_are_exported_per_version_and_bad_ones_skipped() -> None:
    m = WorkerMetrics.create(CollectorRegistry())
    publish_validation(m, "v1", {"val_flagged_precision": 0.25, "val_flagged_recall": 0.75,
                                 "val_auc_roc": 0.9})
    publish_validation(m, "v2", {"val_flagged_precision": float("nan"),
                                 "val_flagged_recall": 1.5})
    publish_validation(m, "v0", {})  # trained before the figures existed
    get = m.registry.get_sample_value
    name = "fraudstream_model_validation_ratio"
    assert get(name, {"model_version": "v1", "measure": "flagged_precision"}) == 0.25
    assert get(name, {"model_version": "v1", "measure": "flagged_recall"}) == 0.75
    for version in ("v2", "v0"):
        for measure in ("flagged_precision", "flagged_recall"):
            assert get(name, {"model_version": version, "measure": measure}) is None
