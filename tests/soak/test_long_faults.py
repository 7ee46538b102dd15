"""overload and cpu-starve as issue 9 states them: the fault lasts 60 s, not 20.

Kept out of `make test` (run it with `make soak`): each run lasts about two minutes plus the
drain. Pass: no worker replaced, the backlog drains, lost 0, duplicates 0 (the runner's rules).
"""

from __future__ import annotations

import pytest

from fraudstream.chaos import RunPlan
from fraudstream.deploy.local import LocalStack
from fraudstream.settings import Settings
from tests.soak.runs import run_scenario

pytestmark = pytest.mark.chaos


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["overload", "cpu-starve"])
def test_sixty_seconds_of_slowness_drain_without_a_failover(base_settings: Settings,
                                                            stack: LocalStack,
                                                            name: str) -> None:
    # Overload's burst is four times the rate: twice the capacity (tests/chaos/
    # test_scenarios.py, OVERLOAD_PLAN).
    rate = 800 if name == "overload" else 300
    report = run_scenario(base_settings, stack, name,
                          RunPlan(rate=rate, duration_s=120, fault_at_s=10, workers=2,
                                  standbys=1, fault_seconds=60))
    assert not report.failovers, report.problems
    assert report.drained_after_heal_s is not None, report.problems
    if name == "overload":
        # Issue 9's rule for overload: no failover, the lag drains, lost 0, duplicates 0 (the
        # last two in run_scenario). At twice the capacity for 60 s the simulated clock runs
        # far ahead of the label path, and merchant and card features drift for real
        # (2026-12-01: 220,000 scored, lost 0, no failover, drained, but drift alerts on
        # card_avg_amount_30d, the merchant risks and the score): the strict no-drift check
        # is test_warm_drift.py's, known to fail for that reason.
        assert not report.alerts_missing, report.problems
        assert report.conflicting_decisions == 0, report.problems
    else:
        assert report.passed, report.problems
