"""The supervisor against real workers: configuration errors stop it, restores are reported."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fraudstream.bench.harness import preload
from fraudstream.feeds import outgoing
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.workers.pool import WorkerProcess, settings_env, worker_datadir
from fraudstream.workers.topics import ensure_topics
from tests.stack_fixtures import running_pool

pytestmark = pytest.mark.integration


def test_supervise_without_a_signing_key_stops_at_once_with_one_error(
        settings: Settings) -> None:
    ensure_topics(settings)
    env = settings_env(dataclasses.replace(settings, signing_key=""))
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "fraudstream.cli", "supervise", "--workers", "1",
                          "--standby", "0"], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    took = time.monotonic() - started
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("fraudstream supervise: error: "), run.stderr
    assert "FRAUDSTREAM_SIGNING_KEY is not set" in errors[0]
    assert took < 60, f"took {took:.0f}s: restarted instead of stopping"
    workers = list((settings.state_dir / "logs").glob(f"{settings.app_id}-worker-*.log"))
    assert len(workers) == 1, "the refusing worker was restarted"


@contextlib.contextmanager
def another_program_on(host: str, port: int) -> Iterator[None]:
    """A listener on ``host:port`` that is none of the app's workers, as a web server would be."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind((host, port))
        other.listen()
        yield


def test_supervise_refuses_a_slot_port_another_program_holds(settings: Settings) -> None:
    # Measured before: a web server on slot 1's port made `supervise` replace that slot's
    # worker 19 times in a minute, each replacement exiting at once (and counted `stopped`).
    ensure_topics(settings)
    port = settings.worker_web_port + 1
    with another_program_on(settings.bind_host, port):
        run = subprocess.run([sys.executable, "-m", "fraudstream.cli", "supervise",
                              "--workers", "1", "--standby", "0"], env=settings_env(settings),
                             capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, run.stderr
    assert f"port {port} of worker slot 1" in errors[0]
    assert "FRAUDSTREAM_WORKER_WEB_PORT" in errors[0]
    assert not list((settings.state_dir / "logs").glob(f"{settings.app_id}-worker-*.log"))


def test_a_worker_that_fails_at_start_announces_no_stop(settings: Settings) -> None:
    """Only a stop that was asked for (SIGTERM) is a drain: a worker that fails stops the same
    way inside Faust, and its announced stop made the supervisor replace it as `stopped`, a
    non-fault its crash-loop and storm accounting leave out."""
    from fraudstream.workers.pool import stopping_file

    ensure_topics(settings)
    with another_program_on(settings.bind_host, settings.worker_web_port + 1):
        worker = WorkerProcess(settings, 1)
        worker.start()
        assert worker.proc is not None
        mark = stopping_file(settings, worker.proc.pid)
        announced = False
        deadline = time.monotonic() + 90
        while worker.alive() and time.monotonic() < deadline:
            announced = announced or mark.exists()
            time.sleep(0.01)
        assert not worker.alive(), "the worker did not exit with its web port taken"
    assert not announced and worker.proc.returncode not in (0, None)


def test_a_restarted_worker_reports_its_restore_in_ready(settings: Settings) -> None:
    ds = simulate(SimulationConfig(n_customers=3000, n_terminals=500, nb_days=3, seed=4,
                                   id_prefix="rs"))
    records = list(outgoing(ds, 0, 12_000, with_labels=False))

    with running_pool(settings, 1) as pool:
        asyncio.run(preload(settings, records))
        worker = pool.workers[0]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # every card written to the table's changelog
            if (worker.readiness() or {}).get("ready") and _outputs(worker) >= len(records):
                break
            time.sleep(1)
    # Restarted with nothing on local disk (a new host, or a new slot): it reads the cards back
    # from the changelog, polled as fast as it answers. (Restarted in its slot, it would find
    # its RocksDB and read only the changelog's tail: tests/integration/
    # test_card_state_restart.py.)
    shutil.rmtree(worker_datadir(settings, 1))
    answers: list[dict[str, Any]] = []
    restarted = WorkerProcess(settings, 1)
    restarted.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = restarted.readiness(timeout=1)
            if answer is not None:
                answers.append(answer)
                if answer.get("ready"):
                    break
            time.sleep(0.05)
    finally:
        restarted.stop()
    restoring = [a for a in answers if a.get("restoring")]
    assert restoring, f"never saw a restore in {len(answers)} answers: {answers[-3:]}"
    assert all(not a["ready"] for a in restoring)
    assert any(a["restore"]["remaining"] > 0 for a in restoring), restoring[:3]
    assert answers[-1]["ready"] and not answers[-1]["restoring"]


def _outputs(worker: WorkerProcess) -> float:
    """Records the worker scored or dead-lettered (each batch's cards commit with them). Not
    its consumer lag: the preload's transaction leaves a marker after each partition's last
    record, which the lag counts."""
    text = worker.metrics_page(timeout=5) or ""
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(("fraudstream_transactions_scored_total",
                                   "fraudstream_transactions_dead_lettered_total")))


def test_a_worker_announces_its_stop_before_its_web_server_goes(settings: Settings) -> None:
    import signal

    from fraudstream.workers.pool import stopping_file

    with running_pool(settings, 1) as pool:
        worker = pool.workers[0]
        assert worker.proc is not None and not worker.stopping()
        mark = stopping_file(settings, worker.proc.pid)
        worker.signal(signal.SIGTERM)
        seen_with_process_alive = False
        deadline = time.monotonic() + 30
        while worker.alive() and time.monotonic() < deadline:
            seen_with_process_alive = seen_with_process_alive or mark.exists()
            time.sleep(0.01)
        assert seen_with_process_alive, "no stop announced while the process was stopping"
        assert worker.proc.wait(10) == 0  # a clean stop: the supervisor reads it as stopped
    assert not mark.exists(), "the mark outlived the worker"
