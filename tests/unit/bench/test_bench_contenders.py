"""A contender is measured for latency only once it reads its partitions, whoever it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.bench.harness import READY_LINE, BenchError, StartedModules


def started(tmp_path: Path, *scripts: str) -> StartedModules:
    log_path = tmp_path / "contender.log"
    log = log_path.open("ab")
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
             for script in scripts]
    return StartedModules(procs, log, log_path, log.tell())


READY = f"print({READY_LINE.decode()!r}, flush=True); import time; time.sleep(60)"
NEVER = "import time; time.sleep(60)"


def test_ready_once_every_process_said_so(tmp_path: Path) -> None:
    run = started(tmp_path, READY, READY)
    try:
        run.wait_ready(20)
    finally:
        run.stop()
    assert all(p.returncode is not None for p in run.procs)


def test_a_line_from_an_earlier_run_in_the_same_log_does_not_count(tmp_path: Path) -> None:
    (tmp_path / "contender.log").write_bytes(READY_LINE + b"\n" + READY_LINE + b"\n")
    run = started(tmp_path, READY, NEVER)
    try:
        with pytest.raises(BenchError, match="not ready after 2s"):
            run.wait_ready(2)
    finally:
        run.stop()


def test_a_process_that_exits_before_it_is_ready_is_an_error_not_a_wait(
        tmp_path: Path) -> None:
    run = started(tmp_path, READY, "raise SystemExit(3)")
    try:
        with pytest.raises(BenchError, match=r"exited \(3\) before it was ready"):
            run.wait_ready(20)
    finally:
        run.stop()
