import json
from pathlib import Path

import numpy as np
import pytest

from fraudstream.model_registry.artifact import (
    ArtifactError,
    ModelManifest,
    load_verified,
    manifest_path,
    save_signed,
)
from fraudstream.model_registry.backtest import run_backtest
from fraudstream.model_registry.training import (
    TrainedModel,
    TrainingError,
    TrainingPlan,
    choose_thresholds,
    fold_windows,
    train,
)
from fraudstream.simulator import Dataset, SimulationConfig, simulate

KEY = b"unit-test-key"


@pytest.fixture(scope="module")
def world() -> Dataset:
    return simulate(SimulationConfig(n_customers=300, n_terminals=600, nb_days=40, seed=2))


@pytest.fixture(scope="module")
def trained(world: Dataset) -> TrainedModel:
    return train(world, "logreg", delay_days=7)


def test_signed_model_loads_and_scores(tmp_path: Path, trained: TrainedModel) -> None:
    path = save_signed(tmp_path / "m.skops", trained.model_bytes, trained.manifest, KEY)
    model = load_verified(path, KEY)
    assert model.version == trained.manifest.version
    scores = model.estimator.predict_proba(np.zeros((3, len(model.manifest.feature_names))))
    assert scores.shape == (3, 2)
    assert 0 < model.manifest.review_threshold <= model.manifest.decline_threshold


def test_flipped_byte_is_refused(tmp_path: Path, trained: TrainedModel) -> None:
    path = save_signed(tmp_path / "m.skops", trained.model_bytes, trained.manifest, KEY)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_verified(path, KEY)


def test_edited_manifest_or_wrong_key_is_refused(tmp_path: Path, trained: TrainedModel) -> None:
    path = save_signed(tmp_path / "m.skops", trained.model_bytes, trained.manifest, KEY)
    with pytest.raises(ArtifactError, match="bad signature"):
        load_verified(path, b"another-key")
    manifest = json.loads(manifest_path(path).read_text())
    manifest["decline_threshold"] = 0.99
    manifest_path(path).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="bad signature"):
        load_verified(path, KEY)


def test_missing_manifest_and_garbage_file(tmp_path: Path, trained: TrainedModel) -> None:
    with pytest.raises(ArtifactError, match="no manifest"):
        load_verified(tmp_path / "absent.skops", KEY)
    with pytest.raises(ArtifactError, match="no signing key"):
        save_signed(tmp_path / "m.skops", trained.model_bytes, trained.manifest, b"")


def test_training_rejects_unknown_family_and_fraudless_data() -> None:
    ds = simulate(SimulationConfig(n_customers=50, n_terminals=100, nb_days=10, seed=1))
    with pytest.raises(TrainingError, match="unknown model family"):
        train(ds, "xgboost-3000")
    no_fraud = type(ds)(**{**ds.__dict__, "is_fraud": np.zeros(len(ds), dtype=np.int8)})
    with pytest.raises(TrainingError, match="no fraud"):
        train(no_fraud, "logreg")


def test_thresholds_follow_precision_targets() -> None:
    y = np.array([0] * 90 + [1] * 10)
    s = np.concatenate([np.linspace(0, 0.5, 90), np.linspace(0.6, 1.0, 10)])
    review, decline = choose_thresholds(y, s, decline_precision=0.9, review_precision=0.5)
    assert review <= decline
    assert decline <= 0.6


def test_folds_step_back_in_time_and_never_train_on_newer_rows() -> None:
    from fraudstream.model_registry.training import TrainingPlan, fold_windows

    ds = simulate(SimulationConfig(n_customers=50, n_terminals=100, nb_days=40, seed=1))
    folds = fold_windows(ds, TrainingPlan(folds=5), delay_days=7)
    first_day = int(ds.timestamp_s[0]) // 86_400
    # 40 days minus the 7-day warm-up fit two folds of 7 train + 7 delay + 7 validation days.
    assert [w.test_start_day - first_day for w in folds] == [33, 26]
    for w in folds:
        assert w.train_start_day + w.train_days + w.delay_days == w.test_start_day
        assert w.train_start_day >= first_day + 7
    with pytest.raises(TrainingError, match="too few days"):
        train(ds.take(ds.timestamp_s < ds.timestamp_s[0] + 20 * 86_400), "logreg")


def test_search_chooses_on_older_folds_and_the_newest_fold_judges_the_choice(
        world: Dataset, trained: TrainedModel) -> None:
    assert [s["params"] for s in trained.search] == [
        {"C": 1.0}, {"C": 1.0, "class_weight": "balanced"}, {"C": 0.1}]
    # Two folds: the older one chooses, the newest one is held out.
    assert all(s["folds"] == 1 for s in trained.search)
    best = max(trained.search, key=lambda s: s["average_precision"])
    m = trained.manifest.metrics
    assert m["selection_average_precision"] == best["average_precision"]
    assert (m["selection_folds"], m["search_settings"], m["val_folds"]) == (1, 3, 1)
    # The estimate is the chosen setting's backtest on the newest fold, which chose nothing
    # (the same fit when the data's cold-start days are not added to the training rows: a
    # backtest has none, its features start from the look-back).
    newest = fold_windows(world, TrainingPlan(), delay_days=7)[0]
    plain = train(world, "logreg", delay_days=7, plan=TrainingPlan(cold_start=False))
    plain_params = max(plain.search, key=lambda s: s["average_precision"])["params"]
    plain_alone = run_backtest(world, newest, "logreg", params=plain_params).metrics
    for k in ("auc_roc", "average_precision", "card_precision_at_100"):
        assert plain.manifest.metrics[f"val_{k}"] == plain_alone[k]
    assert m["val_average_precision"] != m["selection_average_precision"]
    # The flagged decisions' figures the live alerts compare with: score >= review threshold
    # on the held-out fold, counted here by hand.
    y, scores = trained.validation["y"], trained.validation["scores"]
    flagged = scores >= trained.manifest.review_threshold
    tp = int(((y == 1) & flagged).sum())
    assert 0 < tp < int(flagged.sum())
    assert m["val_flagged_precision"] == tp / int(flagged.sum())
    assert m["val_flagged_recall"] == tp / int((y == 1).sum())
    assert trained.manifest.reference["score"]["proportions"]


def test_one_fold_is_not_searched(world: Dataset) -> None:
    # 33 days: one fold of 7 training + 7 delay + 7 validation days after the 7-day warm-up.
    short = world.take(world.timestamp_s < world.timestamp_s[0] + 33 * 86_400)
    one = train(short, "logreg", delay_days=7)
    assert [s["params"] for s in one.search] == [{"C": 1.0}]
    m = one.manifest.metrics
    assert (m["selection_folds"], m["search_settings"]) == (1, 1)
    assert m["val_average_precision"] == m["selection_average_precision"]


def test_report_has_every_plot(tmp_path: Path, trained: TrainedModel) -> None:
    from fraudstream.model_registry.training import write_report

    report = write_report(trained, tmp_path / "r")
    text = report.read_text()
    for png in ("roc.png", "precision_recall.png", "confusion.png", "scores.png",
                "importance.png"):
        assert f"]({png})" in text
        assert (tmp_path / "r" / png).read_bytes()[:4] == b"\x89PNG"
    assert "class_weight" in text and "review >=" in text


@pytest.mark.parametrize("name", ["hgb", "logreg", "rf", "blend"])
def test_every_family_loads_through_skops(tmp_path: Path, name: str) -> None:
    from dataclasses import replace

    from fraudstream.model_registry.artifact import serialise
    from fraudstream.model_registry.families import build

    rng = np.random.default_rng(0)
    X, y = rng.random((300, 4)), (rng.random(300) < 0.2).astype(int)
    estimator = build(name).fit(X, y)
    manifest = ModelManifest(version=name, family=name, feature_names=list("abcd"), sha256="",
                             created_at="", review_threshold=0.1, decline_threshold=0.5)
    data = serialise(estimator)
    import hashlib

    manifest = replace(manifest, sha256=hashlib.sha256(data).hexdigest())
    path = save_signed(tmp_path / "m.skops", data, manifest, KEY)
    loaded = load_verified(path, KEY)
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), estimator.predict_proba(X))
