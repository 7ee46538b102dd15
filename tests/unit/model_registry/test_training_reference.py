"""The drift reference a trained model carries describes all the traffic workers will see."""

from __future__ import annotations

import numpy as np

from fraudstream.model_registry.reference import histogram_reference
from fraudstream.model_registry.training import TrainingPlan, train
from fraudstream.simulator import SimulationConfig, simulate


def test_reference_covers_the_whole_test_window_not_only_the_evaluated_rows() -> None:
    ds = simulate(SimulationConfig(n_customers=150, n_terminals=300, nb_days=30, seed=3))
    trained = train(ds, "logreg", plan=TrainingPlan(search=False))
    evaluated = trained.validation["X"]
    # The evaluation leaves out known-compromised cards; the workers score them too.
    n_frauds_evaluated = int(trained.validation["y"].sum())
    assert n_frauds_evaluated < int(ds.is_fraud.sum())
    from_evaluated = histogram_reference(evaluated[:, 0])
    assert trained.manifest.reference["features"]["amount"] != from_evaluated
    assert np.isclose(sum(trained.manifest.reference["features"]["amount"]["proportions"]), 1)
