"""A pool of workers (the benchmark's) refuses a slot's web port that another program holds,
before it starts any worker: such a worker would exit at once, and the benchmark then blamed
the machine's load (measured: `fraudstream bench` beside a running `fraudstream demo`)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from fraudstream.workers.pool import SlotPortTaken, WorkerPool, check_slot_ports


def listening() -> socket.socket:
    """Another program's server on a free loopback port."""
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    return other


def slot_one_on(port: int, state_dir: Path) -> Settings:
    """Settings whose worker slot 1 serves on ``port``."""
    return Settings(state_dir=state_dir, bind_host="127.0.0.1", worker_web_port=port - 1)


def test_a_pool_starts_no_worker_when_a_slot_port_is_taken(tmp_path: Path) -> None:
    with listening() as other:
        port = other.getsockname()[1]
        pool = WorkerPool(slot_one_on(port, tmp_path), 2, port_wait_s=0.2)
        with pytest.raises(SlotPortTaken) as refused:
            pool.start()
    message = str(refused.value)
    assert f"port {port} of worker slot 1 (FRAUDSTREAM_WORKER_WEB_PORT + 1)" in message
    assert "set FRAUDSTREAM_WORKER_WEB_PORT so that the web port + 1 to + 2 are free" in message
    assert pool.workers == []
    assert not (tmp_path / "logs").exists(), "a worker was started"


def test_free_slot_ports_pass(tmp_path: Path) -> None:
    with listening() as other:
        port = other.getsockname()[1]
    # Closed again: slot 1 of these settings is a port nothing listens on.
    check_slot_ports(slot_one_on(port, tmp_path), 1, wait_s=0.0)


def test_a_port_that_comes_free_within_the_wait_passes(tmp_path: Path) -> None:
    """A stopped worker's threads may hold its port a moment after it reads as gone."""
    other = listening()
    threading.Timer(0.3, other.close).start()
    started = time.monotonic()
    check_slot_ports(slot_one_on(other.getsockname()[1], tmp_path), 1, wait_s=5.0)
    assert 0.2 < time.monotonic() - started < 5.0
