"""``fraudstream api`` as a child process, for the tests that need a running API (the
dashboard's browser tests, the alert tests' webhook)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from fraudstream.settings import Settings
from fraudstream.workers.pool import settings_env
from tests.conftest import wait_until


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@dataclasses.dataclass
class ApiServer:
    """``fraudstream api`` as a child process (uvicorn), and where it listens."""

    settings: Settings
    log_file: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.bind_host}:{self.settings.api_port}"

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "fraudstream.cli", "api"],
                                         env=settings_env(self.settings),
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        wait_until(lambda: get_status(f"{self.url}/api/dashboard/panels") == 200
                   or self.proc is None or self.proc.poll() is not None, 60,
                   f"the API did not answer on {self.url}")
        assert self.proc.poll() is None, f"the API exited:\n{self.log_tail()}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
