"""Workers a dead supervisor left running are stopped by the next one; never a live one's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from fraudstream.workers import orphans


def fake_worker(*argv: str, app_id: str = "orphan-test") -> subprocess.Popen[bytes]:
    """A sleeping process whose command line reads like ``argv`` (in its own session), in
    the environment a supervisor gives a worker of ``app_id``."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv],
                            env={**os.environ, "FRAUDSTREAM_APP_ID": app_id},
                            start_new_session=True)


def test_listed_workers_still_running_are_killed_and_unlisted(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path, app_id="orphan-test")
    worker = fake_worker("-m", "fraudstream.cli", "worker", "--index", "1")
    other = fake_worker("not-ours")  # a pid reused by something else
    neighbour = fake_worker("-m", "fraudstream.cli", "worker", app_id="another-app")
    try:
        for pid in (worker.pid, other.pid, neighbour.pid, 999_999_999):  # the last long gone
            orphans.listed(s, pid)
        assert orphans.stop_orphans(s) == [worker.pid]
        assert worker.wait(5) == -9
        assert other.poll() is None and neighbour.poll() is None
        assert list(orphans.run_dir(s).glob("worker-*.pid")) == []
    finally:
        for p in (worker, other, neighbour):
            p.kill()
            p.wait()


def test_one_supervisor_per_app_and_state_dir(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path, app_id="orphan-test")
    first = orphans.claim(s)
    with pytest.raises(orphans.SupervisorBusy, match="another supervisor runs"):
        orphans.claim(s)
    orphans.claim(Settings(state_dir=tmp_path, app_id="another-app")).close()
    first.close()  # the supervisor died: its lock goes with it
    orphans.claim(s).close()
