"""Running one long chaos scenario as a test: its summary, and its workers' logs on failure."""

from __future__ import annotations

from pathlib import Path

from fraudstream.chaos import SCENARIOS, ChaosReport, ChaosRunner, RunPlan
from fraudstream.deploy.local import LocalStack
from fraudstream.model_registry.artifact import ModelManifest, save_signed
from fraudstream.model_registry.training import TrainingPlan, train
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from tests.stack_fixtures import SIGNING_KEY


def model_of_world(path: Path, customers: int, seed: int) -> ModelManifest:
    """A signed logreg model at ``path`` of the simulated world (``customers``, twice as many
    terminals, 60 days, ``seed``) a run will stream, validated on two weeks (~4,000 rows for
    300 customers): enough for per-feature drift thresholds (slices of the chaos drift window,
    2,000 rows; the session's model validates on one week, 2,142 rows, and falls back to 0.25
    everywhere). Returns its manifest."""
    trained = train(simulate(SimulationConfig(n_customers=customers,
                                              n_terminals=2 * customers, nb_days=60,
                                              seed=seed)), "logreg",
                    plan=TrainingPlan(val_days=14, search=False))
    save_signed(path, trained.model_bytes, trained.manifest, SIGNING_KEY.encode())
    return trained.manifest


def run_scenario(base_settings: Settings, stack: LocalStack, name: str,
                 plan: RunPlan) -> ChaosReport:
    """Run scenario ``name`` under ``plan``; print its summary (and the logs if it failed)."""
    runner = ChaosRunner(base_settings, stack, plan)
    report = runner.run(SCENARIOS[name])
    print(report.markdown())
    if not report.passed:
        for worker, tail in runner.logs.items():
            print(f"--- {worker} log tail\n{tail}")
    assert report.lost == 0 and report.duplicates == 0, report.problems
    return report
