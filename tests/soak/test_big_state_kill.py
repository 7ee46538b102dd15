"""big-state-kill at full size: 1,000,000 cards in the card table, then SIGKILL a worker.

Kept out of `make test` (run it with `make soak`): filling the changelog with a million cards
and the workers' first restore of them take several minutes on a 2-core machine. The same
scenario runs in `make test` with 100,000 cards (tests/chaos/test_scenarios.py).
"""

from __future__ import annotations

import pytest

from chaos import SCENARIOS, ChaosRunner, RunPlan
from deploy.local import LocalStack
from fraudstream.settings import Settings

pytestmark = pytest.mark.chaos


@pytest.mark.timeout(1800)
def test_a_million_cards_restore_in_seconds_after_a_kill(base_settings: Settings,
                                                         stack: LocalStack) -> None:
    scenario = SCENARIOS["big-state-kill"]
    assert scenario.preload_cards == 1_000_000
    runner = ChaosRunner(base_settings, stack,
                         RunPlan(rate=400, duration_s=40, fault_at_s=10, workers=2, standbys=1))
    report = runner.run(scenario)
    print(report.markdown())
    if not report.passed:
        for worker, tail in runner.logs.items():
            print(f"--- {worker} log tail\n{tail}")
    assert report.preloaded_cards == 1_000_000
    assert report.lost == 0 and report.duplicates == 0, report.problems
    assert report.recovery_seconds is not None and report.recovery_seconds <= 30, report.problems
    assert report.passed, report.problems
