"""A chaos run serves on ports of its own: never the app's, never another run's, and a run
whose ports are taken stops at once with one line instead of crash-looping its workers."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream.chaos import SCENARIOS
from fraudstream.chaos import ports as chaos_ports
from fraudstream.chaos.ports import (
    MAX_SHIFTS,
    PORT_OFFSET,
    ChaosPortsTaken,
    app_ports,
    candidates,
    port_taken,
    run_ports,
)
from fraudstream.chaos.runner import ChaosRunner, RunPlan
from fraudstream.errors import UserError
from fraudstream.settings import Settings


def serving_ports(settings: Settings, workers: int) -> set[int]:
    """What a supervisor and its ``workers`` slots bind with ``settings``."""
    return {settings.supervisor_port} | {settings.worker_web_port + slot
                                          for slot in range(1, workers + 1)}


@pytest.fixture
def own_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The port locks in this test's folder: a developer's real chaos run is not this test's."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch, own_lock_dir: Path) -> Iterator[set[int]]:
    """Ports the test declares taken (every other one is free), whatever this machine runs."""
    busy: set[int] = set()
    monkeypatch.setattr(chaos_ports, "port_taken", lambda _host, port: port in busy)
    yield busy


def test_a_run_never_serves_on_the_apps_ports(tmp_path: Path, taken: set[int],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # The defect: a run inherited FRAUDSTREAM_WORKER_WEB_PORT and _SUPERVISOR_PORT, so next
    # to `fraudstream supervise` (6065, 6067, 6068) its workers died at start, again and again.
    base = Settings(state_dir=tmp_path)
    runner = ChaosRunner(base, None, RunPlan(workers=4))
    # The settings the run would start its supervisor and workers with, without Kafka.
    monkeypatch.setattr(runner, "_run", lambda _scenario: runner._fresh_settings())
    fresh: Settings = runner.run(SCENARIOS["kill-worker"])  # type: ignore[assignment]
    assert fresh.app_id.startswith("chaos-")
    assert serving_ports(fresh, 4).isdisjoint(app_ports(base))
    assert serving_ports(fresh, 4).isdisjoint({6065, 6066, 6067, 6068, 6069, 6070})


def test_nor_on_the_defaults_when_the_environment_moved_the_apps_ports() -> None:
    # FRAUDSTREAM_WORKER_WEB_PORT=5966 for the run: its first shift would be the demo's 6066+.
    base = Settings(worker_web_port=5966, supervisor_port=5965)
    for ports in candidates(base, 2):
        assert set(ports.needed()).isdisjoint(app_ports(Settings()) | app_ports(base))
    assert candidates(base, 2)[0].worker_web_port == 5966 + 2 * PORT_OFFSET


def test_a_taken_port_moves_the_run_to_the_next_shift(taken: set[int]) -> None:
    base = Settings()
    taken.add(base.worker_web_port + PORT_OFFSET + 2)  # slot 2 of the first shift
    with run_ports(base, 2) as ports:
        assert ports.worker_web_port == base.worker_web_port + 2 * PORT_OFFSET
        assert ports.supervisor_port == base.supervisor_port + 2 * PORT_OFFSET


def test_taken_ports_stop_the_run_at_once_with_one_line(taken: set[int]) -> None:
    base = Settings()
    taken.update(base.worker_web_port + shift * PORT_OFFSET + 1
                 for shift in range(1, MAX_SHIFTS + 1))
    with pytest.raises(ChaosPortsTaken) as raised, run_ports(base, 2):
        pytest.fail("the run started on taken ports")
    message = str(raised.value)
    assert isinstance(raised.value, UserError)  # the CLI prints it as one line, exit 2
    assert "\n" not in message
    assert f"127.0.0.1:{base.worker_web_port + PORT_OFFSET + 1}" in message
    assert "FRAUDSTREAM_WORKER_WEB_PORT" in message


def test_two_runs_at_once_take_different_ports(taken: set[int]) -> None:
    # Runs of different state dirs (the state dir's lock does not see the other run): the
    # second must not pick the first's ports in the seconds before its workers bind them.
    base = Settings()
    with run_ports(base, 2) as first, run_ports(base, 2) as second:
        assert set(first.needed()).isdisjoint(second.needed())
    with run_ports(base, 2) as again:  # released when the run ends
        assert again == first


def test_the_runner_refuses_before_anything_starts(tmp_path: Path, taken: set[int]) -> None:
    runner = ChaosRunner(Settings(state_dir=tmp_path), None, RunPlan(workers=2))
    taken.update(range(1, 65536))
    with pytest.raises(ChaosPortsTaken), runner._own_ports():
        pytest.fail("the run went on")
    assert runner._ports is None


def test_a_listening_port_is_taken_and_a_closed_one_is_free(own_lock_dir: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_taken("127.0.0.1", port)
    assert not port_taken("127.0.0.1", port)
