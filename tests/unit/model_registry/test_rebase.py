"""Re-basing a model version's drift reference on recent traffic (a new version, same bytes)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from fraudstream.cli import main
from fraudstream.features import FEATURE_NAMES, build_feature_matrix
from fraudstream.model_registry.artifact import save_signed
from fraudstream.model_registry.rebase import rebase_reference, rebased_manifest
from fraudstream.model_registry.registry import ModelRegistry
from fraudstream.model_registry.stores import MemoryStore
from fraudstream.model_registry.training import TrainingPlan, train
from fraudstream.simulator import SimulationConfig, simulate, write_csv
from tests.unit.api.test_registry_surfaces import cli_env  # noqa: F401  (a fixture)
from tests.unit.model_registry.test_registry import KEY

NOW = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world() -> tuple:
    config = SimulationConfig(n_customers=150, n_terminals=300, nb_days=30, seed=3)
    trained = train(simulate(config), "logreg", plan=TrainingPlan(search=False))
    shifted = simulate(dataclasses.replace(config, amount_scale=5.0))
    X = build_feature_matrix(shifted.timestamp_s, shifted.card_id, shifted.merchant_id,
                             shifted.amount, shifted.is_fraud)[-3000:]
    return trained, X


def test_the_new_reference_describes_the_rows_and_keeps_the_model(world: tuple) -> None:
    trained, X = world
    new = rebased_manifest(trained.manifest, X, np.full(len(X), 0.5), source="recent.csv",
                           now=NOW)
    assert new.version == f"{trained.manifest.version}-rebased-20261130080000"
    assert new.sha256 == trained.manifest.sha256 and new.signature == ""
    old_edges = trained.manifest.reference["features"]["amount"]["edges"]
    new_edges = new.reference["features"]["amount"]["edges"]
    # Amounts five times larger: the median cut point moves by about that much.
    assert new_edges[len(new_edges) // 2] > 3 * old_edges[len(old_edges) // 2]
    assert new.reference["rebased_from"] == {"version": trained.manifest.version,
                                             "rows": 3000, "source": "recent.csv",
                                             "at": "2026-11-30T08:00:00+00:00"}
    assert new.reference["feature_p99"] == trained.manifest.reference["feature_p99"]
    assert set(new.reference["drift_thresholds"]) == {*FEATURE_NAMES, "score"}
    # A second re-base names itself after the original, not after the first re-base.
    again = rebased_manifest(new, X, np.full(len(X), 0.5), source="x", now=NOW)
    assert again.version == new.version


def test_rebase_registers_a_signed_version_with_the_same_bytes(world: tuple) -> None:
    trained, X = world
    registry = ModelRegistry([MemoryStore(), MemoryStore()], b"key")
    registry.register(trained.model_bytes, trained.manifest)
    new = rebase_reference(registry, trained.manifest.version, X, source="recent.csv", now=NOW)
    loaded = registry.load(new.version, FEATURE_NAMES)
    assert loaded.model.manifest.reference["rebased_from"]["version"] == \
        trained.manifest.version
    assert loaded.model.manifest.sha256 == trained.manifest.sha256
    # The old version and its reference are untouched.
    old = registry.load(trained.manifest.version, FEATURE_NAMES).model.manifest
    assert old.reference == trained.manifest.reference


def test_cli_rebase_reference_registers_and_promotes(world: tuple, tmp_path: Path,
                                                     cli_env: list) -> None:  # noqa: F811
    trained, _X = world
    path = save_signed(tmp_path / "m.skops", trained.model_bytes, trained.manifest, KEY)
    assert main(["registry", "import", str(path), "--promote"]) == 0
    recent = simulate(SimulationConfig(n_customers=150, n_terminals=300, nb_days=30, seed=4,
                                       amount_scale=5.0))
    write_csv(recent, tmp_path / "recent.csv")
    assert main(["registry", "rebase-reference", "production", "--from",
                 str(tmp_path / "recent.csv"), "--rows", "2000", "--promote"]) == 0
    alias, version, _generation = cli_env[-1]
    assert alias == "production" and version.startswith(f"{trained.manifest.version}-rebased-")
    assert main(["registry", "rebase-reference", "production", "--from",
                 str(tmp_path / "missing.csv")]) == 2
