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


def test_the_check_after_each_seek_sees_the_offsets_faust_just_sought_to() -> None:
    """The worker moves a start past a partition's end after Faust's seek, never before it:
    Faust's seek would set the old offset again."""
    from faust.types import TP

    from fraudstream.workers.faust_bridge import after_each_seek, committed_offset

    tp = TP("tx", 0)
    seen: list[int | None] = []

    async def run() -> None:
        app = faust.App("bridge-seek-test", broker="kafka://127.0.0.1:1")
        consumer = cast(Any, app.consumer)

        async def seek_to_committed() -> dict[Any, int]:
            return {tp: 50_000}

        consumer.seek_to_committed = seek_to_committed

        async def check() -> None:
            seen.append(committed_offset(consumer, tp))

        after_each_seek(consumer, check)
        await consumer.perform_seek()
        await consumer.perform_seek()

    asyncio.run(run())
    assert seen == [50_000, 50_000]


def test_each_record_is_stamped_when_faust_turns_it_into_a_message() -> None:
    """``workers.arrivals`` splits a record's time at this stamp; Faust's own monitor sets it
    only for records a stream tracks, which the batch reader does itself."""
    import time
    from types import SimpleNamespace

    from aiokafka.structs import ConsumerRecord
    from faust.transport.drivers import aiokafka as faust_aiokafka
    from faust.types import TP

    from fraudstream.workers.faust_bridge import stamp_arrivals

    stamp_arrivals()
    stamp_arrivals()  # installed once, however often called
    record = ConsumerRecord(topic="tx", partition=0, offset=7, timestamp=1_000,
                            timestamp_type=0, key=b"k", value=b"v", checksum=None,
                            serialized_key_size=1, serialized_value_size=1, headers=())
    # Faust's consumer, as far as its conversion reads it (no app, thread or event loop).
    consumer = SimpleNamespace(app=SimpleNamespace(consumer_generation_id=3))
    before = time.monotonic()
    message = cast(Any, faust_aiokafka.Consumer)._to_message(consumer, TP("tx", 0), record)
    assert message.offset == 7 and message.timestamp == 1.0
    assert message.generation_id == 3
    assert before <= message.time_in <= time.monotonic()
