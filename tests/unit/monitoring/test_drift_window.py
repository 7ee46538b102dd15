"""The sliding drift window and the gauges the worker publishes from it."""

from __future__ import annotations

import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from fraudstream.model_registry.reference import build_reference
from fraudstream.monitoring.drift import population_stability_index
from fraudstream.monitoring.drift_window import DriftMonitor, DriftWindow
from fraudstream.monitoring.metrics import WorkerMetrics

NAMES = ["a", "b"]


def reference(rng: np.random.Generator) -> dict:
    X = rng.normal(size=(5000, 2))
    return build_reference(X, NAMES, rng.uniform(size=5000))


def batch(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, 2))
    X[:, 0] += shift
    return X, rng.uniform(size=n)


def test_window_keeps_the_last_rows_and_measures_a_shift() -> None:
    rng = np.random.default_rng(1)
    w = DriftWindow(reference(rng), NAMES, window_rows=1000)
    for _ in range(10):
        w.add(*batch(rng, 200))
    assert 1000 <= w.rows < 1200  # whole batches leave the window
    calm = w.statistics()
    assert calm["a"]["psi"] < 0.05 and calm["score"]["psi"] < 0.05
    for _ in range(10):
        w.add(*batch(rng, 200, shift=2.0))
    shifted = w.statistics()
    assert shifted["a"]["psi"] > 1.0 and shifted["a"]["js"] > 0.2
    assert shifted["b"]["psi"] < 0.05  # untouched feature stays calm


def test_statistics_equal_the_pure_functions_on_the_window_counts() -> None:
    ref = {"features": {"a": {"edges": [0.0], "proportions": [0.5, 0.5]},
                        "b": {"edges": [1.0, 2.0], "proportions": [0.2, 0.3, 0.5]}},
           "score": {"edges": [0.5], "proportions": [0.9, 0.1]}}
    w = DriftWindow(ref, NAMES, window_rows=100)
    w.add(np.array([[-1.0, 0.0], [1.0, 3.0], [2.0, 3.0], [3.0, 1.5]]),
          np.array([0.1, 0.2, 0.3, 0.9]))
    stats = w.statistics()
    assert stats["a"]["psi"] == pytest.approx(population_stability_index([0.5, 0.5], [1, 3]))
    assert stats["b"]["psi"] == pytest.approx(
        population_stability_index([0.2, 0.3, 0.5], [1, 1, 2]))
    assert stats["score"]["psi"] == pytest.approx(population_stability_index([0.9, 0.1], [3, 1]))


def test_missing_values_are_counted_and_left_out_of_the_histogram() -> None:
    rng = np.random.default_rng(2)
    w = DriftWindow(reference(rng), NAMES, window_rows=100)
    X, s = batch(rng, 10)
    X[:3, 1] = np.nan
    assert w.add(X, s).tolist() == [0, 3]
    assert w.totals[1].sum() == 7 and w.totals[0].sum() == 10


def test_monitor_publishes_gauges_at_most_every_interval_and_resets_on_model_change() -> None:
    rng = np.random.default_rng(3)
    m = WorkerMetrics.create(CollectorRegistry())
    now = [0.0]
    mon = DriftMonitor(m, NAMES, window_rows=400, min_rows=100, publish_interval_s=5.0,
                       clock=lambda: now[0])
    ref = reference(rng)
    get = m.registry.get_sample_value
    mon.observe("v1", ref, *batch(rng, 50))
    assert get("fraudstream_feature_drift", {"feature": "a", "method": "psi"}) is None  # < min
    mon.observe("v1", ref, *batch(rng, 100))
    # Published only over a full window: the threshold was measured on windows that size.
    assert get("fraudstream_feature_drift", {"feature": "a", "method": "psi"}) is None
    assert get("fraudstream_drift_window_rows") == 150
    now[0] = 5.0
    mon.observe("v1", ref, *batch(rng, 250))
    calm = get("fraudstream_feature_drift", {"feature": "a", "method": "psi"})
    assert calm is not None and calm < 0.1
    for _ in range(4):
        mon.observe("v1", ref, *batch(rng, 100, shift=3.0))
    # Within the interval: the gauge has not moved yet.
    assert get("fraudstream_feature_drift", {"feature": "a", "method": "psi"}) == calm
    now[0] = 10.0
    mon.observe("v1", ref, *batch(rng, 100, shift=3.0))
    shifted = get("fraudstream_feature_drift", {"feature": "a", "method": "psi"})
    assert shifted is not None and shifted > 1.0
    assert get("fraudstream_score_drift", {"method": "js"}) is not None
    mon.observe("v2", ref, *batch(rng, 10))
    assert get("fraudstream_feature_drift", {"feature": "a", "method": "psi"}) is None
    assert get("fraudstream_drift_window_rows") == 0


def test_a_model_without_reference_histograms_disables_drift_quietly() -> None:
    m = WorkerMetrics.create(CollectorRegistry())
    mon = DriftMonitor(m, NAMES, window_rows=10, min_rows=1, publish_interval_s=0)
    mon.observe("old", {}, np.zeros((3, 2)), np.zeros(3))
    assert mon.window is None


def test_per_batch_cost_is_small() -> None:
    """Print the per-batch overhead (18 features, 500 rows); fail only if absurdly slow."""
    rng = np.random.default_rng(4)
    names = [f"f{i}" for i in range(18)]
    X = rng.normal(size=(5000, 18))
    ref = build_reference(X, names, rng.uniform(size=5000))
    mon = DriftMonitor(WorkerMetrics.create(CollectorRegistry()), names, window_rows=20000,
                       min_rows=4000, publish_interval_s=5.0)
    rows, scores = rng.normal(size=(500, 18)), rng.uniform(size=500)
    mon.observe("v", ref, rows, scores)
    n = 200
    started = time.perf_counter()
    for _ in range(n):
        mon.observe("v", ref, rows, scores)
    per_batch = (time.perf_counter() - started) / n
    print(f"drift window: {per_batch * 1e6:.0f} us per 500-row batch")
    assert per_batch < 0.05  # a generous bound: the point is the printed figure


def test_a_malformed_reference_never_fails_the_batch() -> None:
    m = WorkerMetrics.create(CollectorRegistry())
    bad = {"features": {"a": {"edges": [0.0], "proportions": [1.0]},  # one share, two bins
                        "b": {"edges": [0.0], "proportions": [0.5, 0.5]}},
           "score": {"edges": [0.5], "proportions": [0.5, 0.5]}}
    mon = DriftMonitor(m, NAMES, window_rows=3, min_rows=1, publish_interval_s=0)
    mon.observe("v", bad, np.zeros((3, 2)), np.zeros(3))  # must not raise
    assert mon.window is None


HIST_NAMES = ["amount", "is_night", "card_nb_tx_1d"]
DAY = 86_400


def history_reference() -> dict:
    """amount uniform over 4 bins, is_night 25 % ones, card_nb_tx_1d 1-4 a quarter each."""
    return {"features": {
        "amount": {"edges": [1.0, 2.0, 3.0], "proportions": [0.25] * 4},
        "is_night": {"edges": [0.0], "proportions": [0.75, 0.25]},
        "card_nb_tx_1d": {"edges": [1.0, 2.0, 3.0], "proportions": [0.25] * 4}},
        "score": {"edges": [0.5], "proportions": [0.5, 0.5]},
        "drift_thresholds": {"amount": 0.4}}


def like_reference(n: int, night: float, nb: float | None) -> np.ndarray:
    """n rows whose amount and card count cycle through the four reference bins."""
    cycle = np.tile([0.5, 1.5, 2.5, 3.5], n // 4)
    return np.column_stack([cycle, np.full(n, night),
                            cycle + 0.5 if nb is None else np.full(n, nb)])


def test_calendar_features_are_never_compared_and_say_why() -> None:
    m = WorkerMetrics.create(CollectorRegistry())
    mon = DriftMonitor(m, HIST_NAMES, window_rows=40, min_rows=8, publish_interval_s=0)
    # A night-only window: is_night would be a major "shift" against the 25 % reference.
    mon.observe("v", history_reference(), like_reference(40, 1.0, None), np.full(40, 0.2),
                event_times=np.full(40, 1_700_000_000))
    get = m.registry.get_sample_value
    assert get("fraudstream_feature_drift", {"feature": "is_night", "method": "psi"}) is None
    assert get("fraudstream_feature_drift_excluded",
               {"feature": "is_night", "reason": "calendar"}) == 1
    assert get("fraudstream_feature_drift", {"feature": "amount", "method": "psi"}) == \
        pytest.approx(0.0, abs=1e-9)


def test_a_history_feature_is_compared_only_on_rows_scored_once_the_state_is_warm() -> None:
    m = WorkerMetrics.create(CollectorRegistry())
    mon = DriftMonitor(m, HIST_NAMES, window_rows=60, min_rows=8, publish_interval_s=0)
    mon.history.probe_rows = 8
    get = m.registry.get_sample_value
    ref, t0 = history_reference(), 1_700_000_000
    # A cold state: every card is new (count 1), for the first 12 hours of event time.
    mon.observe("v", ref, like_reference(40, 0.0, 1.0), np.full(40, 0.2),
                event_times=np.linspace(t0, t0 + DAY // 2, 40))
    card = {"feature": "card_nb_tx_1d", "method": "psi"}
    assert get("fraudstream_feature_drift", card) is None
    assert get("fraudstream_feature_drift_warming_seconds",
               {"feature": "card_nb_tx_1d", "reason": "history"}) == DAY // 2
    assert get("fraudstream_score_drift", {"method": "psi"}) is None
    assert get("fraudstream_feature_drift_warming_seconds",
               {"feature": "score", "reason": "history"}) == DAY // 2  # its longest input
    # A day of event time later the state is warm; rows from then on match the reference.
    mon.observe("v", ref, like_reference(40, 0.0, None), np.full(40, 0.2),
                event_times=np.full(40, t0 + DAY))
    assert get("fraudstream_feature_drift_warming_seconds",
               {"feature": "card_nb_tx_1d", "reason": "history"}) is None
    # 40 warm rows of a 60-row window (the 40 cold ones still in it, not counted): not yet.
    assert mon.window is not None and mon.window.rows == 80
    assert get("fraudstream_feature_drift", card) is None
    assert get("fraudstream_feature_drift", {"feature": "amount", "method": "psi"}) == \
        pytest.approx(0.0, abs=1e-9)  # always warm: its window is full
    mon.observe("v", ref, like_reference(20, 0.0, None), np.full(20, 0.2),
                event_times=np.full(20, t0 + DAY))
    # The cold batch has left; 60 warm rows: compared, and like the reference.
    assert mon.window.rows == 60
    assert get("fraudstream_feature_drift", card) == pytest.approx(0.0, abs=1e-9)
    assert get("fraudstream_drift_history_seconds", {"family": "card"}) == DAY


def test_thresholds_come_from_the_reference_or_default_to_the_convention() -> None:
    m = WorkerMetrics.create(CollectorRegistry())
    mon = DriftMonitor(m, HIST_NAMES, window_rows=100, min_rows=1, publish_interval_s=0)
    mon.observe("v", history_reference(), like_reference(4, 0.0, None), np.full(4, 0.2))
    get = m.registry.get_sample_value
    assert get("fraudstream_feature_drift_threshold", {"feature": "amount"}) == 0.4
    assert get("fraudstream_feature_drift_threshold", {"feature": "card_nb_tx_1d"}) == 0.25
    assert get("fraudstream_feature_drift_threshold", {"feature": "is_night"}) is None
    assert get("fraudstream_score_drift_threshold") == 0.25
    # Without event times the history features wait, and the gauge says why.
    assert get("fraudstream_feature_drift_warming_seconds",
               {"feature": "card_nb_tx_1d", "reason": "no_event_times"}) == DAY
