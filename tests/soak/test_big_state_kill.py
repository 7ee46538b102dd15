"""big-state-kill at full size: 1,000,000 cards in the card table, then SIGKILL a worker.

Kept out of `make test` (run it with `make soak`): filling the changelog with a million cards
and the workers' first restore of them take several minutes on a 2-core machine. The same
scenario runs in `make test` with 100,000 cards (tests/chaos/test_scenarios.py).
"""

from __future__ import annotations

import pytest

from fraudstream.chaos import SCENARIOS, RunPlan
from fraudstream.deploy.local import LocalStack
from fraudstream.settings import Settings
from tests.soak.runs import run_scenario

pytestmark = pytest.mark.chaos


@pytest.mark.timeout(1800)
def test_a_million_cards_restore_in_seconds_after_a_kill(base_settings: Settings,
                                                         stack: LocalStack) -> None:
    assert SCENARIOS["big-state-kill"].preload_cards == 1_000_000
    report = run_scenario(base_settings, stack, "big-state-kill",
                          RunPlan(rate=400, duration_s=40, fault_at_s=10, workers=2, standbys=1))
    assert report.preloaded_cards == 1_000_000
    assert report.recovery_seconds is not None and report.recovery_seconds <= 30, report.problems
    assert report.passed, report.problems
