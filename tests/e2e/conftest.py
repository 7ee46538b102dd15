"""Browser tests: headless Debian chromium driven by Playwright, and the API serving the page."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from fraudstream.workers.pool import settings_env
from tests.conftest import wait_until

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless chromium per module (the system's: Playwright downloads nothing).

    Module scope, not session: while Playwright's sync API is open its event loop counts as
    running in this thread, and later tests calling ``asyncio.run`` would fail.
    """
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make setup` (installs the chromium package)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


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


def prometheus_vector(base_url: str, promql: str) -> list[tuple[dict[str, str], float]]:
    """The test's own instant query: (labels, value) of every series."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:
        result = json.loads(resp.read())["data"]["result"]
    return [(dict(r["metric"]), float(r["value"][1])) for r in result]


def prometheus_alerts(base_url: str) -> list[dict[str, object]]:
    """The alerts Prometheus holds now (its /api/v1/alerts)."""
    with urllib.request.urlopen(f"{base_url}/api/v1/alerts", timeout=5) as resp:
        return list(json.loads(resp.read())["data"]["alerts"])
