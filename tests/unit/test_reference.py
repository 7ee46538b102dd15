"""Reference distributions carried by a model version."""

from __future__ import annotations

import numpy as np

from model_registry.reference import bin_counts, build_reference, histogram_reference


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
