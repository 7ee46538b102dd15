import json
from pathlib import Path

import numpy as np
import pytest

from model_registry.artifact import ArtifactError, load_verified, manifest_path, save_signed
from model_registry.training import TrainedModel, TrainingError, choose_thresholds, train
from simulator import SimulationConfig, simulate

KEY = b"unit-test-key"


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    ds = simulate(SimulationConfig(n_customers=300, n_terminals=600, nb_days=40, seed=2))
    return train(ds, "logreg", delay_days=7)


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
