"""The scenarios that need three KRaft nodes (replication 3, min.insync.replicas 2).

The same scenarios and runner as ``fraudstream chaos run``: the session stack has one node, so
the runner starts a three-node Kafka of its own, shared by the scenarios of this module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fraudstream.chaos import SCENARIOS, ChaosRunner, RunPlan
from fraudstream.deploy.local import LocalStack
from fraudstream.settings import Settings

pytestmark = pytest.mark.chaos

ON_THREE_NODES = [name for name, s in SCENARIOS.items() if s.kafka_nodes == 3]


@pytest.fixture(scope="module")
def three_nodes(base_settings: Settings, stack: LocalStack) -> Iterator[ChaosRunner]:
    runner = ChaosRunner(base_settings, stack,
                         RunPlan(rate=300, duration_s=20, fault_at_s=6, workers=2, standbys=1))
    with runner.on_three_nodes() as inner:
        yield inner


def test_the_scenarios_are_the_three_node_ones() -> None:
    assert set(ON_THREE_NODES) == {"kill-broker", "kill-worker-3-brokers"}


@pytest.mark.parametrize("name", ON_THREE_NODES)
def test_on_three_nodes_nothing_is_lost_or_repeated(three_nodes: ChaosRunner, name: str) -> None:
    scenario = SCENARIOS[name]
    report = three_nodes.run(scenario)
    print(report.markdown())
    if not report.passed:
        for worker, tail in three_nodes.logs.items():
            print(f"--- {worker} log tail\n{tail}")
    assert report.skipped is None, report.skipped
    assert report.produced > 0
    assert report.lost == 0 and report.duplicates == 0, report.problems
    if scenario.expect_failover:
        assert report.failovers, "the supervisor replaced no worker"
    if scenario.check_cards:
        assert report.card_check and report.card_check["mismatched"] == 0, report.card_check
    assert report.passed, report.problems
