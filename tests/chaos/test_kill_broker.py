"""kill-broker on a three-node cluster: replication 3, min.insync.replicas 2, one node SIGKILLed.

The same scenario and runner as ``fraudstream chaos run kill-broker``, on a Kafka-only local
stack of three KRaft nodes of its own (the session stack has one node).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from chaos import SCENARIOS, ChaosRunner, RunPlan
from deploy.local import LocalStack, StackConfig
from fraudstream.settings import Settings
from tests.conftest import wait_until
from tests.stack_fixtures import BASE_PORT

pytestmark = pytest.mark.chaos


@pytest.fixture
def three_nodes(tmp_path: Path) -> Iterator[LocalStack]:
    stack = LocalStack(StackConfig(root=tmp_path, kafka_port=BASE_PORT + 700, kafka_nodes=3,
                                   kafka_heap_mb=256))
    try:
        stack.up(("kafka",))
        admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
        try:
            wait_until(lambda: len(admin.describe_cluster()["brokers"]) == 3, 60,
                       "three brokers did not register")
        finally:
            admin.close()
        yield stack
    finally:
        stack.down()


def test_kill_broker_loses_nothing(base_settings: Settings, three_nodes: LocalStack) -> None:
    settings = dataclasses.replace(base_settings, bootstrap_servers=three_nodes.bootstrap,
                                   kafka_port=three_nodes.config.kafka_port, kafka_nodes=3,
                                   replication_factor=3)
    runner = ChaosRunner(settings, three_nodes,
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
