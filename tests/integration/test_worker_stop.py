"""A worker told to stop (SIGTERM, as in a deploy) stops by itself, promptly and cleanly."""

from __future__ import annotations

import time

import pytest

from fraudstream.settings import Settings
from tests.stack_fixtures import running_pool

pytestmark = pytest.mark.integration


def test_a_sigtermed_worker_exits_by_itself_without_crashing_its_agents(
        settings: Settings) -> None:
    with running_pool(settings, 1) as pool:
        worker = pool.workers[0]
        started = time.monotonic()
        # The pool's own stop would SIGKILL after 20 s: a worker that only exits then looks
        # stopped to the caller.
        worker.stop(timeout=60.0)
        took = time.monotonic() - started
        log = worker.log_tail(600)
    assert "Closing event loop" in log, "the worker did not finish its own shutdown"
    assert "Crashed" not in log, "an agent crashed while stopping"
    assert took < 15.0, f"the worker took {took:.1f} s to stop"
