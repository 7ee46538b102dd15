"""A failed ``stack up`` stops what it started (only that), and says why with the log that
explains it: for Kafka, the failing node's own server log."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fraudstream.deploy.local import LocalStack, StackConfig, StackError
from fraudstream.deploy.local.errors import ServiceNotReady
from fraudstream.deploy.local.kafka import KafkaCluster
from fraudstream.deploy.local.process import ManagedProcess, process_start_ticks, wait_until

#: Ports no developer stack uses, so nothing on this machine answers on them.
FREE = 29400
SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


@dataclass
class FakeService:
    """A service whose process is a sleeping Python; ready or not as the test says."""

    process: ManagedProcess
    is_ready: bool = True

    def start(self) -> None:
        self.process.start(SLEEPER)

    def ready(self) -> bool:
        return self.is_ready


def fake_stack(root: Path) -> LocalStack:
    stack = LocalStack(StackConfig(root=root, kafka_port=FREE, redis_port=FREE + 1,
                                   prometheus_port=FREE + 2, alertmanager_port=FREE + 3,
                                   ready_timeout_s=0.5))
    run_dir = root / "run"
    stack.redis = FakeService(ManagedProcess("redis", run_dir))  # type: ignore[assignment]
    stack.prometheus = FakeService(  # type: ignore[assignment]
        ManagedProcess("prometheus", run_dir), is_ready=False)
    stack.alertmanager = FakeService(  # type: ignore[assignment]
        ManagedProcess("alertmanager", run_dir))
    return stack


def test_a_failed_up_stops_what_it_started_and_nothing_else(tmp_path: Path) -> None:
    stack = fake_stack(tmp_path)
    stack.alertmanager.start()  # running before this `up`: it must stay
    services = [stack.redis.process, stack.prometheus.process, stack.alertmanager.process]
    try:
        with pytest.raises(ServiceNotReady, match="prometheus did not become ready"):
            stack.up(("redis", "alertmanager", "prometheus"))
        assert not stack.redis.process.running()
        assert not stack.prometheus.process.running()
        assert stack.alertmanager.process.running()
    finally:
        for proc in services:
            proc.stop(timeout=2)


def running_as_this_process(name: str, run_dir: Path, detail_log: Path) -> ManagedProcess:
    """A ManagedProcess whose pid file names this test process: running, nothing started."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / f"{name}.pid").write_text(
        f'{{"pid": {os.getpid()}, "start_ticks": {process_start_ticks(os.getpid())}}}')
    return ManagedProcess(name, run_dir, detail_log=detail_log)


def test_not_ready_shows_the_server_log_of_the_node_holding_things_up(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "kafka-2.server.log").write_text(
        "[x] ERROR Socket server failed to bind to 127.0.0.1:9093: Address already in use\n")
    node1 = running_as_this_process("kafka-1", tmp_path / "run", logs / "kafka-1.server.log")
    node2 = running_as_this_process("kafka-2", tmp_path / "run", logs / "kafka-2.server.log")
    with pytest.raises(ServiceNotReady) as caught:
        wait_until(lambda: False, 0.3, "kafka did not become ready", proc=[node1, node2],
                   laggard=lambda: node2)
    message = str(caught.value)
    assert "Last log lines of kafka-2:" in message
    assert "failed to bind to 127.0.0.1:9093: Address already in use" in message


def test_the_cause_above_a_long_shutdown_is_still_shown(tmp_path: Path) -> None:
    log = tmp_path / "kafka-2.server.log"
    log.write_text("\n".join([
        "[t] INFO starting",
        "[t] ERROR Unable to start acceptor for ListenerName(PLAINTEXT)",
        "org.apache.kafka.common.KafkaException: Socket server failed to bind to "
        "127.0.0.1:9093: Address already in use.",
        "\tat java.base/sun.nio.ch.Net.bind0(Native Method)",
        *(f"[t] INFO shutting down part {i}" for i in range(50)),
    ]) + "\n")
    tail = ManagedProcess("kafka-2", tmp_path / "run", detail_log=log).log_tail(20)
    assert "Address already in use" in tail and "Unable to start acceptor" in tail
    assert "Net.bind0" not in tail and "part 49" in tail and "part 29" not in tail


def test_an_exited_node_fails_the_wait_with_its_log(tmp_path: Path) -> None:
    node1 = running_as_this_process("kafka-1", tmp_path / "run", tmp_path / "k1.log")
    node2 = ManagedProcess("kafka-2", tmp_path / "run", detail_log=tmp_path / "k2.log")
    (tmp_path / "k2.log").write_text("fatal: bind\n")
    with pytest.raises(StackError, match=r"kafka-2 exited\. Last log lines:\n--- .*\nfatal: bind"):
        wait_until(lambda: False, 5, "kafka did not become ready", proc=[node1, node2])


def test_the_laggard_is_the_first_node_not_listening(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path, "127.0.0.1", FREE + 10, 3, 256)
    assert cluster.laggard().name == "kafka-1"
    with socket.socket() as node1_port:
        node1_port.bind(("127.0.0.1", FREE + 10))
        node1_port.listen()
        laggard = cluster.laggard()
    assert laggard.name == "kafka-2"
    assert laggard.detail_log == tmp_path / "logs" / "kafka-2.server.log"
