"""The local stack's Redis needs its password and Prometheus has no lifecycle API."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fraudstream.deploy.local import LocalStack, StackConfig
from tests.stack_fixtures import BASE_PORT

pytestmark = pytest.mark.integration


def _ask(port: int, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
        sock.sendall(command)
        return sock.recv(128)


def test_redis_requires_the_generated_password_kept_out_of_sight(tmp_path: Path) -> None:
    port = BASE_PORT + 382
    stack = LocalStack(StackConfig(root=tmp_path, redis_port=port, kafka_port=BASE_PORT + 500,
                                   prometheus_port=BASE_PORT + 501,
                                   alertmanager_port=BASE_PORT + 502))
    try:
        stack.up(("redis",))
        password = stack.redis.secret()
        assert len(password) >= 16
        assert (tmp_path / "redis.password").stat().st_mode & 0o777 == 0o600
        assert _ask(port, b"PING\r\n").startswith(b"-NOAUTH")
        assert _ask(port, b"AUTH " + password.encode() + b"\r\n").startswith(b"+OK")
        pid = stack.redis.process.pid()
        assert pid is not None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert password.encode() not in cmdline
        assert password not in stack.redis.process.log_file.read_text()
        assert stack.redis.ready()
    finally:
        stack.down()


def test_redis_takes_a_configured_password(tmp_path: Path) -> None:
    port = BASE_PORT + 383
    stack = LocalStack(StackConfig(root=tmp_path, redis_port=port, kafka_port=BASE_PORT + 500,
                                   prometheus_port=BASE_PORT + 501,
                                   alertmanager_port=BASE_PORT + 502,
                                   redis_password='with "quotes" and \\ 0123456789'))
    try:
        stack.up(("redis",))
        assert not (tmp_path / "redis.password").exists()
        assert stack.redis.ready()
    finally:
        stack.down()


def test_prometheus_cannot_be_shut_down_over_http(stack: LocalStack) -> None:
    url = f"http://127.0.0.1:{stack.config.prometheus_port}/-/quit"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5)
    assert refused.value.code == 403
    assert urllib.request.urlopen(f"http://127.0.0.1:{stack.config.prometheus_port}"
                                  "/-/ready", timeout=5).status == 200
