"""Flat trees: exactly the probabilities of scikit-learn's gradient boosting, or not used."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fraudstream.features import FEATURE_NAMES
from fraudstream.workers.flat_forest import (
    FLAT_MAX_ROWS,
    FlatForest,
    FlatRandomForest,
    SoftVote,
    flat_model,
    verified_flat,
)
from fraudstream.workers.scoring import probe_rows
from tests.unit.workers.test_model_guard import scorer as make_scorer

WIDTH = len(FEATURE_NAMES)


def data(n: int, seed: int, missing: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, WIDTH)) * rng.choice([0.1, 1.0, 10.0, 1000.0], size=WIDTH)
    x[rng.random(x.shape) < missing] = np.nan
    return x


@pytest.fixture(scope="module")
def boosted() -> HistGradientBoostingClassifier:
    # Missing values in training, so that some splits send them left and some right.
    x = data(3000, 0, missing=0.2)
    signal = np.nan_to_num(x[:, 0]) + np.isnan(x[:, 1]) * 2.0 - np.nan_to_num(x[:, 2]) / 10
    y = (signal + np.random.default_rng(1).normal(size=len(x)) > 1.0).astype(int)
    return HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15,
                                          random_state=0).fit(x, y)


def test_the_flat_trees_give_exactly_the_models_probabilities(
        boosted: HistGradientBoostingClassifier) -> None:
    flat = FlatForest.of(boosted)
    assert flat is not None
    nan_left = {bool(n["missing_go_to_left"]) for p in boosted._predictors
                for n in p[0].nodes if not n["is_leaf"]}
    assert nan_left == {True, False}  # both directions of a missing value are exercised
    for n, seed in ((1, 2), (7, 3), (300, 4)):
        rows = data(n, seed, missing=0.3)
        rows[0, :3] = [np.inf, -np.inf, 0.0]
        expected = boosted.predict_proba(rows)[:, 1]
        assert np.array_equal(flat.probabilities(rows), expected)
    no_missing = data(50, 5, missing=0.0)
    assert np.array_equal(flat.probabilities(no_missing), boosted.predict_proba(no_missing)[:, 1])


def test_a_row_of_the_wrong_width_is_refused_as_the_model_refuses_it(
        boosted: HistGradientBoostingClassifier) -> None:
    flat = FlatForest.of(boosted)
    assert flat is not None
    with pytest.raises(ValueError, match="expecting 21 features"):
        flat.probabilities(np.zeros((2, WIDTH - 1)))


def test_other_models_keep_their_own_prediction() -> None:
    x = data(600, 6, missing=0.0)
    y = (x[:, 0] > 0).astype(int)
    assert FlatForest.of(LogisticRegression().fit(x[:, :1], y)) is None
    three = HistGradientBoostingClassifier(max_iter=5).fit(
        x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 0))
    assert FlatForest.of(three) is None
    categories = x.copy()
    categories[:, 3] = np.random.default_rng(7).integers(0, 4, size=len(x))
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[3]).fit(
        categories, (categories[:, 3] == 2).astype(int))
    assert FlatForest.of(categorical) is None


def test_flat_trees_that_differ_on_the_probe_rows_are_not_used(
        boosted: HistGradientBoostingClassifier, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = probe_rows(None)
    assert verified_flat(boosted, probe) is not None
    original = FlatForest.probabilities

    def off_by_a_bit(self: FlatForest, rows: np.ndarray) -> np.ndarray:
        return np.nextafter(original(self, rows), 1.0)

    monkeypatch.setattr(FlatForest, "probabilities", off_by_a_bit)
    assert verified_flat(boosted, probe) is None


def test_the_scorer_scores_small_batches_flat_and_large_ones_with_the_model(
        boosted: HistGradientBoostingClassifier, monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = make_scorer("v", boosted)
    calls: list[int] = []
    original = FlatForest.probabilities

    def counted(self: FlatForest, rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        return original(self, rows)

    monkeypatch.setattr(FlatForest, "probabilities", counted)
    for n in (1, FLAT_MAX_ROWS, FLAT_MAX_ROWS + 1, 500):
        rows = data(n, n)
        assert np.array_equal(scorer.score(rows), boosted.predict_proba(rows)[:, 1])
    assert calls == [1, FLAT_MAX_ROWS]


@pytest.fixture(scope="module")
def finite_data() -> tuple[np.ndarray, np.ndarray]:
    x = data(2000, 8, missing=0.0)
    y = (x[:, 0] / np.abs(x[:, 0]).max() + np.random.default_rng(9).normal(size=len(x)) / 4
         > 0.1).astype(int)
    return x, y


@pytest.fixture(scope="module")
def forest(finite_data: tuple[np.ndarray, np.ndarray]) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=12, max_depth=12, min_samples_leaf=2,
                                  random_state=0).fit(*finite_data)


@pytest.fixture(scope="module")
def blend(finite_data: tuple[np.ndarray, np.ndarray],
          forest: RandomForestClassifier) -> VotingClassifier:
    # The default family's shape (model_registry.families): forest and scaled logistic
    # regression, soft vote, unequal weights.
    return VotingClassifier(
        [("rf", RandomForestClassifier(n_estimators=12, max_depth=12, random_state=0)),
         ("logreg", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)))],
        voting="soft", weights=(2, 1)).fit(*finite_data)


def test_a_random_forest_as_arrays_gives_exactly_its_probabilities(
        forest: RandomForestClassifier) -> None:
    flat = FlatRandomForest.of(forest)
    assert flat is not None
    for n, seed in ((1, 10), (9, 11), (300, 12)):
        rows = data(n, seed, missing=0.0)
        assert np.array_equal(flat.probabilities(rows), forest.predict_proba(rows)[:, 1])
    # Just above a root's threshold in float64, at or below it once rounded to float32: the
    # trees compare the rounded value, as scikit-learn's do.
    roots = [(int(t.tree_.feature[0]), float(t.tree_.threshold[0])) for t in forest.estimators_]
    edges = [(f, np.nextafter(t, np.inf)) for f, t in roots
             if np.float32(np.nextafter(t, np.inf)) <= t]
    assert edges
    rows = data(len(edges), 18, missing=0.0)
    for i, (f, value) in enumerate(edges):
        rows[i, f] = value
    assert np.array_equal(flat.probabilities(rows), forest.predict_proba(rows)[:, 1])


def test_rows_float32_cannot_hold_take_the_forests_own_path(
        forest: RandomForestClassifier) -> None:
    flat = FlatRandomForest.of(forest)
    assert flat is not None
    rows = data(3, 13, missing=0.0)
    rows[1, 2] = 1e39
    with np.errstate(over="ignore"), pytest.raises(ValueError, match="float32"):
        forest.predict_proba(rows)
    with np.errstate(over="ignore"), pytest.raises(ValueError, match="float32"):
        flat.probabilities(rows)


def test_a_soft_vote_averages_flat_and_own_members_exactly(blend: VotingClassifier) -> None:
    flat = flat_model(blend)
    assert isinstance(flat, SoftVote)
    for n, seed in ((1, 14), (22, 15), (128, 16)):
        rows = data(n, seed, missing=0.0)
        assert np.array_equal(flat.probabilities(rows), blend.predict_proba(rows)[:, 1])
    # A missing value: the logistic regression refuses it, in the vote and in its flat form.
    rows = data(4, 17, missing=0.3)
    with pytest.raises(ValueError, match="NaN"):
        blend.predict_proba(rows)
    with pytest.raises(ValueError, match="NaN"):
        flat.probabilities(rows)
    assert verified_flat(blend, probe_rows(None)) is not None


def test_a_vote_with_nothing_to_flatten_keeps_its_own_prediction(
        finite_data: tuple[np.ndarray, np.ndarray]) -> None:
    linear = VotingClassifier(
        [("a", make_pipeline(StandardScaler(), LogisticRegression())),
         ("b", make_pipeline(StandardScaler(), LogisticRegression(C=0.1)))],
        voting="soft").fit(*finite_data)
    assert flat_model(linear) is None


def test_flat_trees_that_score_rows_the_model_refuses_are_not_used(
        blend: VotingClassifier, monkeypatch: pytest.MonkeyPatch) -> None:
    def lenient(self: SoftVote, rows: np.ndarray) -> np.ndarray:
        return np.zeros(len(rows))

    monkeypatch.setattr(SoftVote, "probabilities", lenient)
    assert verified_flat(blend, probe_rows(None)) is None


def test_only_flat_trees_timed_within_the_budget_are_quick(
        boosted: HistGradientBoostingClassifier, monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = make_scorer("v", boosted)
    assert scorer.quick(1) and scorer.quick(FLAT_MAX_ROWS)
    # Larger batches take scikit-learn's own path: not bounded by the timing.
    assert not scorer.quick(FLAT_MAX_ROWS + 1)
    # Flat trees slower than the budget on this machine stay in the guard's thread.
    monkeypatch.setattr("fraudstream.workers.scoring.QUICK_BUDGET_S", 0.0)
    assert not make_scorer("v", boosted).quick(1)
    # A model without flat trees is never quick.
    plain = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        np.nan_to_num(data(200, 3)), np.arange(200) % 2)
    assert not make_scorer("v", plain).quick(1)
