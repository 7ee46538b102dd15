"""Running one long chaos scenario as a test: its summary, and its workers' logs on failure."""

from __future__ import annotations

from chaos import SCENARIOS, ChaosReport, ChaosRunner, RunPlan
from deploy.local import LocalStack
from fraudstream.settings import Settings


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
