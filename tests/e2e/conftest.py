"""Browser tests: headless Debian chromium driven by Playwright, and the API serving the page."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from tests.api_server import ApiServer, get_status

__all__ = ["ApiServer", "get_status", "prometheus_alerts", "prometheus_vector"]

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
