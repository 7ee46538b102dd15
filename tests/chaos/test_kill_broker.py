"""kill-broker: one of three KRaft nodes (replication 3, min.insync.replicas 2) SIGKILLed.

The same scenario and runner as ``fraudstream chaos run kill-broker``: the session stack has
one node, so the runner starts a three-node Kafka of its own for the run.
"""

from __future__ import annotations

import pytest

from chaos import SCENARIOS, ChaosRunner, RunPlan
from deploy.local import LocalStack
from fraudstream.settings import Settings

pytestmark = pytest.mark.chaos


def test_kill_broker_loses_nothing(base_settings: Settings, stack: LocalStack) -> None:
    runner = ChaosRunner(base_settings, stack,
                         RunPlan(rate=300, duration_s=20, fault_at_s=6, workers=2, standbys=1))
    report = runner.run(SCENARIOS["kill-broker"])
    print(report.markdown())
    if not report.passed:
        for worker, tail in runner.logs.items():
            print(f"--- {worker} log tail\n{tail}")
    assert report.skipped is None, report.skipped
    assert report.produced > 0
    assert report.lost == 0 and report.duplicates == 0, report.problems
    assert report.passed, report.problems
