"""Shared test helpers; the real-stack fixtures (one stack per session) live in stack_fixtures."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Callable

import pytest

pytest_plugins = ["tests.stack_fixtures"]


def wait_until(predicate: Callable[[], bool], timeout: float, message: str,
               interval: float = 0.2) -> None:
    """Poll until ``predicate`` is true; fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"{message} (after {timeout:.0f}s)")


def partitions_of(port: int) -> list[int]:
    """The input partitions the worker on web port ``port`` says it owns (none while it does
    not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as resp:
            return list(json.loads(resp.read())["partitions"])
    except OSError:
        return []


@pytest.fixture(scope="session")
def promtool() -> str:
    """The ``promtool`` executable (Debian package prometheus); fails, never skips, without it."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("`promtool` is missing: run `make setup` (Debian package prometheus)",
                    pytrace=False)
    return exe
