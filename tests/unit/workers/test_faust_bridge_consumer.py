"""The worker's Faust consumer as the bridge tunes it, built through Faust's own path."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import faust

from fraudstream.workers.faust_bridge import FETCH_MAX_WAIT_MS, tune_worker_consumer


def test_the_worker_consumer_reads_committed_and_waits_briefly_at_the_broker() -> None:
    """Faust builds its consumer with a 1.5 s fetch wait, behind which every offset lookup
    of its recovery queued (about 6 s at a worker's start, measured)."""

    async def build() -> tuple[int, str]:
        tune_worker_consumer()
        app = faust.App("bridge-consumer-test", broker="kafka://127.0.0.1:1")
        consumer = cast(Any, app.consumer)._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms, consumer._isolation_level
        finally:
            await consumer.stop()  # never started: only releases what it holds

    wait_ms, isolation = asyncio.run(build())
    assert wait_ms == FETCH_MAX_WAIT_MS <= 200
    assert isolation == "read_committed"
