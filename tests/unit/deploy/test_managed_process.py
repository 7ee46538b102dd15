"""A managed server process is really gone when stop() returns, even one that ignores SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from fraudstream.deploy.local.process import (
    ManagedProcess,
    process_cpu_seconds,
    process_start_ticks,
)


def test_stop_returns_only_once_a_stubborn_process_is_gone(tmp_path: Path) -> None:
    proc = ManagedProcess("stubborn", tmp_path / "run")
    ignores_sigterm = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                       "open(__import__('sys').argv[1], 'w').close(); time.sleep(60)")
    ready = tmp_path / "ready"
    pid = proc.start([sys.executable, "-c", ignores_sigterm, str(ready)])
    deadline = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), proc.log_tail()
    assert proc.stop(timeout=0.2)
    assert process_start_ticks(pid) is None  # no window where it still holds its ports
    assert not proc.running() and not proc.pid_file.exists()


def test_cpu_seconds_of_a_process_and_of_one_gone() -> None:
    before = process_cpu_seconds(os.getpid())
    assert before is not None
    started = time.process_time()
    while time.process_time() - started < 0.05:  # at least 5 clock ticks of CPU
        pass
    after = process_cpu_seconds(os.getpid())
    assert after is not None and after > before
    child = subprocess.Popen(["true"])
    child.wait()
    assert process_cpu_seconds(child.pid) is None
