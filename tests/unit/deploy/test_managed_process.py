"""A managed server process is really gone when stop() returns, even one that ignores SIGTERM."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fraudstream.deploy.local.process import ManagedProcess, process_start_ticks


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
