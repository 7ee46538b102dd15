"""Every command that talks to Kafka, with no broker listening: one line, exit 2, promptly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Generous for a loaded 2-core machine; the kafka-python commands take about 5 s here.
BOUND_S = 15.0
TRANSACTION = (b'{"transaction_id": "t1", "timestamp": "2026-01-01T00:00:00Z", '
               b'"card_id": "c1", "merchant_id": "m1", "amount": 1.0}\n')


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_commands_say_kafka_is_unreachable_in_one_line(closed_port: int,
                                                       tmp_path: Path) -> None:
    source = tmp_path / "one.jsonl"
    source.write_bytes(TRANSACTION)
    bootstrap = f"127.0.0.1:{closed_port}"
    commands = [
        ["tail", "scores", "--idle-timeout", "1"],
        ["topics", "create"],
        ["topics", "list"],
        ["produce", "--from", str(source)],
        ["simulate", "--live", "--days", "1", "--customers", "5", "--terminals", "5"],
        ["supervise", "--workers", "1"],
    ]
    # Should a command ever start a server before it needs Kafka, the taken port stops it
    # (nothing listens on the machine's default ports because of this test).
    taken = str(closed_port)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FRAUDSTREAM_BOOTSTRAP_SERVERS": bootstrap,
           "FRAUDSTREAM_STATE_DIR": str(tmp_path / "state"),
           "FRAUDSTREAM_SUPERVISOR_PORT": taken, "FRAUDSTREAM_WORKER_WEB_PORT": taken,
           "FRAUDSTREAM_API_PORT": taken}
    started = time.monotonic()
    # Side by side: each mostly waits for the client's connect timeout.
    runs = [(argv, subprocess.Popen([sys.executable, "-m", "fraudstream.cli", *argv],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    cwd=tmp_path, env=env))
            for argv in commands]
    for argv, proc in runs:
        try:
            _stdout, stderr = proc.communicate(timeout=BOUND_S * 2)
        finally:
            proc.kill()
        elapsed = time.monotonic() - started
        name = argv[0]
        assert proc.returncode == 2, (argv, stderr[-3000:])
        assert stderr.splitlines() == [
            f"fraudstream {name}: error: cannot reach Kafka at {bootstrap}; start it with "
            "`fraudstream stack up`, or point FRAUDSTREAM_BOOTSTRAP_SERVERS at a running "
            "cluster"], argv
        assert elapsed < BOUND_S, (argv, elapsed)


def test_verbose_keeps_the_details(closed_port: int, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "FRAUDSTREAM_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port}",
           "FRAUDSTREAM_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "fraudstream.cli", "-v", "tail", "scores"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 2
    assert "Unable connect to" in proc.stderr  # aiokafka's own line, filtered without -v
    assert "KafkaConnectionError" in proc.stderr  # the traceback, logged at debug
    assert proc.stderr.splitlines()[-1].startswith("fraudstream tail: error: cannot reach Kafka")


def test_a_name_that_does_not_resolve_is_one_line_too(tmp_path: Path) -> None:
    # kafka-python logged "DNS lookup failed" three or four times before the line.
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "FRAUDSTREAM_BOOTSTRAP_SERVERS": "nohost.invalid:9092",
           "FRAUDSTREAM_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-m", "fraudstream.cli", "topics", "list"],
                          capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=BOUND_S * 2)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.splitlines() == [
        "fraudstream topics: error: cannot reach Kafka at nohost.invalid:9092; start it with "
        "`fraudstream stack up`, or point FRAUDSTREAM_BOOTSTRAP_SERVERS at a running "
        "cluster"], done.stderr[-3000:]
