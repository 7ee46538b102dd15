"""soak: 30 minutes of steady load with a label per transaction; latency and memory flat.

Kept out of `make test` (run it with `make soak`): it lasts half an hour by definition.
The rate, 300 tx/s, is about 60 % of what two workers with labels sustained on this 2-core
machine (see the README's soak figures).
"""

from __future__ import annotations

import pytest

from chaos import SCENARIOS, RunPlan
from deploy.local import LocalStack
from fraudstream.settings import Settings
from tests.soak.runs import run_scenario

pytestmark = pytest.mark.chaos


@pytest.mark.timeout(2700)
def test_thirty_minutes_keep_latency_and_memory_flat(base_settings: Settings,
                                                     stack: LocalStack) -> None:
    assert SCENARIOS["soak"].default_duration_s == 1800
    report = run_scenario(base_settings, stack, "soak",
                          RunPlan(rate=300, duration_s=1800, fault_at_s=10, workers=2, standbys=1))
    assert report.p99_slope_ms_per_min is not None and report.memory_slope_mb_per_min is not None
    assert report.memory_other_slope_mb_per_min is not None
    assert report.passed, report.problems
