"""The local stack launcher itself: start, status, stop exactly what it started, port taken."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.deploy.local import LocalStack, StackConfig, StackError
from tests.stack_fixtures import BASE_PORT

pytestmark = pytest.mark.integration


def redis_only(root: Path, port: int) -> LocalStack:
    return LocalStack(StackConfig(root=root, redis_port=port, kafka_port=BASE_PORT + 500,
                                  prometheus_port=BASE_PORT + 501,
                                  alertmanager_port=BASE_PORT + 502))


def test_start_status_stop_only_what_it_started(tmp_path: Path) -> None:
    port = BASE_PORT + 379
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stack = redis_only(tmp_path, port)
    try:
        stack.up(("redis",))
        status = {s.name: s for s in stack.status()}
        assert status["redis"].running and status["redis"].ready
        assert not status["kafka-1"].running
        assert stack.down() == ["redis"]
        assert not any(s.running for s in stack.status())
        assert bystander.poll() is None, "down must not touch processes it did not start"
        assert stack.down() == []
    finally:
        bystander.kill()
        stack.down()


def test_port_taken_gives_a_clear_error(tmp_path: Path) -> None:
    port = BASE_PORT + 380
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(StackError, match=f"port {port} .*already in use"):
            redis_only(tmp_path, port).up(("redis",))


def test_stale_pid_file_is_not_trusted(tmp_path: Path) -> None:
    stack = redis_only(tmp_path, BASE_PORT + 381)
    pid_file = stack.redis.process.pid_file
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text('{"pid": 1, "start_ticks": -5, "argv": []}')
    assert not stack.redis.process.running()
    assert stack.down() == []


def test_kafka_stack_is_ready(stack: LocalStack) -> None:
    status = {s.name: s for s in stack.status()}
    assert all(status[n].ready for n in ("kafka-1", "redis", "prometheus", "alertmanager"))
