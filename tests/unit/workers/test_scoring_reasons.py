"""A score's reasons: up to three features above the training data's 99th percentile, the
furthest above it first."""

from __future__ import annotations

import numpy as np

from fraudstream.features import FEATURE_NAMES
from fraudstream.model_registry.artifact import LoadedModel, ModelManifest
from fraudstream.workers.scoring import MAX_REASONS, Scorer
from tests.unit.workers.test_processor import AmountModel

WIDTH = len(FEATURE_NAMES)


def scorer(p99: list[float] | None) -> Scorer:
    manifest = ModelManifest(version="v", family="test", feature_names=list(FEATURE_NAMES),
                             sha256="", created_at="", review_threshold=0.3,
                             decline_threshold=0.8,
                             reference={"feature_p99": p99} if p99 is not None else {})
    return Scorer(LoadedModel(manifest, AmountModel()))


def by_definition(row: np.ndarray, p99: np.ndarray) -> list[str]:
    """Each feature's value over its p99 (over 1 where the p99 is 0); those above 1, highest
    first, at most three (missing values are never a reason)."""
    ratios = [(row[i] / (p99[i] if p99[i] > 0 else 1.0), FEATURE_NAMES[i]) for i in range(WIDTH)]
    above = sorted(((r, name) for r, name in ratios if r > 1.0), key=lambda x: -x[0])
    return [name for _r, name in above[:MAX_REASONS]]


def test_reasons_are_the_features_furthest_above_their_99th_percentile() -> None:
    rng = np.random.default_rng(7)
    p99 = rng.uniform(0.5, 20.0, WIDTH)
    p99[2] = 0.0
    rows = rng.uniform(0.0, 1.6, (400, WIDTH)) * np.where(p99 > 0, p99, 1.0)
    rows[rng.random(rows.shape) < 0.05] = np.nan
    rows[:50] = rng.uniform(0.0, 0.99, (50, WIDTH)) * p99  # nothing above: no reason
    got = scorer(p99.tolist()).reasons(rows)
    assert got == [by_definition(row, p99) for row in rows]
    assert [] in got and any(len(r) == MAX_REASONS for r in got)


def test_no_reasons_without_the_training_percentiles_or_rows() -> None:
    rows = np.ones((3, WIDTH)) * 1e9
    assert scorer(None).reasons(rows) == [[], [], []]
    assert scorer([1.0] * WIDTH).reasons(np.empty((0, WIDTH))) == []
