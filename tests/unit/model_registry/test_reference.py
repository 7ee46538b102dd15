"""Reference distributions carried by a model version."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.model_registry.reference import (
    bin_counts,
    build_reference,
    histogram_reference,
    slice_threshold,
)
from fraudstream.monitoring.drift import PSI_MAJOR, population_stability_index


def test_histogram_reference_splits_into_quantile_bins() -> None:
    values = np.arange(1000, dtype=float)
    ref = histogram_reference(values, bins=10)
    assert len(ref["edges"]) == 9
    assert np.allclose(ref["proportions"], 0.1, atol=0.002)
    assert abs(sum(ref["proportions"]) - 1.0) < 1e-9


def test_constant_feature_keeps_one_edge_and_out_of_range_values_land_in_end_bins() -> None:
    ref = histogram_reference(np.zeros(50), bins=10)
    assert ref["edges"] == [0.0]
    assert bin_counts(np.array([-5.0, 0.0, 1e9]), ref["edges"]).tolist() == [2.0, 1.0]


def test_build_reference_names_every_feature_and_the_score() -> None:
    X = np.random.default_rng(0).normal(size=(200, 3))
    ref = build_reference(X, ["a", "b", "c"], X[:, 0])
    assert set(ref["features"]) == {"a", "b", "c"} and "score" in ref


def test_slice_threshold_is_twice_the_worst_slice_psi_and_never_below_the_convention() -> None:
    # Slices of 4 starting every 2 rows: [0,0,0,0], [0,0,1,1], [1,1,1,1]; the whole is 50/50.
    values = np.array([0.0] * 4 + [1.0] * 4)
    hist = {"edges": [0.5], "proportions": [0.5, 0.5]}
    one_side = population_stability_index([0.5, 0.5], [4, 0])
    assert slice_threshold(values, hist, slice_rows=4) == pytest.approx(2 * one_side)
    # Slices that look like the whole: the conventional 0.25 stays.
    calm = np.array([0.0, 1.0] * 4)
    assert slice_threshold(calm, hist, slice_rows=4) == PSI_MAJOR
    # 1.5 slices' worth of rows give two slices; fewer give none, and no threshold.
    assert slice_threshold(values[:6], hist, slice_rows=4) is not None
    assert slice_threshold(values[:5], hist, slice_rows=4) is None


def test_build_reference_stores_thresholds_per_feature_and_score() -> None:
    rng = np.random.default_rng(0)
    calm = rng.normal(size=4000)
    # A feature whose level changes from one half to the other (a weekly rhythm, say).
    moving = np.concatenate([rng.normal(size=2000), rng.normal(loc=2.0, size=2000)])
    ref = build_reference(np.column_stack([calm, moving]), ["calm", "moving"], calm,
                          slice_rows=2000)
    t = ref["drift_thresholds"]
    assert t["calm"] == PSI_MAJOR and t["score"] == PSI_MAJOR
    assert t["moving"] > 0.5  # the halves differ by two standard deviations
    assert ref["drift_threshold_slice_rows"] == 2000
    # Too few rows for two slices: no thresholds (the monitor falls back to PSI_MAJOR).
    assert "drift_thresholds" not in build_reference(np.zeros((10, 1)), ["x"], np.zeros(10),
                                                     slice_rows=8)
