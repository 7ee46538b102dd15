"""The offset of the last committed record of changelog partitions written by transactions.

A partition's end offset is one past its last entry, and under transactions that entry is a
commit (or abort) marker, which no consumer ever receives: the last record a reader can get
sits one or more offsets earlier. Table recovery must aim at that record
(``workers.faust_bridge.exact_recovery_targets``). It is found by reading, committed only, a
short window before the end, widened backwards until a record turns up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from fraudstream import kafka_clients
from fraudstream.settings import Settings

logger = logging.getLogger(__name__)

#: The first window read before the end: one transaction's marker plus a few records.
FIRST_WINDOW = 16
#: Longest the search may take before it falls back to Faust's own targets.
DEADLINE_S = 30.0
#: Longest the search for a record in a standing backlog may read (the supervisor's progress
#: check and a worker's lag gauge; unfinished, the backlog counts as records), and the longest
#: the whole lookup may take, connecting included (past it, ``holds_records`` raises).
BACKLOG_READ_S = 2.0
BACKLOG_LOOKUP_S = 6.0


async def last_record_offsets(target: Settings | str, ends: Mapping[Any, int],
                              deadline_s: float = DEADLINE_S) -> dict[Any, int]:
    """Per topic-partition (Faust's ``TP``, aiokafka's or kafka-python's ``TopicPartition``),
    given its end offset, the offset of its last committed record, or -1 when it holds none.

    A partition not settled within ``deadline_s`` keeps ``end - 1`` (Faust's own target).
    """
    from aiokafka import TopicPartition

    wanted = {TopicPartition(tp.topic, tp.partition): (tp, end) for tp, end in ends.items()
              if end > 0}
    found: dict[Any, int] = {tp: -1 for tp, end in ends.items() if end <= 0}
    if not wanted:
        return found
    consumer = kafka_clients.aio_consumer(
        target, enable_auto_commit=False, isolation_level="read_committed",
        client_id="fraudstream-recovery", fetch_max_wait_ms=20,
        max_partition_fetch_bytes=1_048_576)
    await kafka_clients.start_bounded(consumer)
    try:
        consumer.assign(list(wanted))
        lows = await consumer.beginning_offsets(list(wanted))
        windows = {tp: (max(end - FIRST_WINDOW, lows[tp]), end)
                   for tp, (_orig, end) in wanted.items()}
        deadline = time.monotonic() + deadline_s
        while windows and time.monotonic() < deadline:
            last = await _read_windows(consumer, windows, deadline)
            wider = {}
            for tp, (start, stop) in windows.items():
                original = wanted[tp][0]
                if tp in last:
                    found[original] = last[tp]
                elif start <= lows[tp]:
                    found[original] = -1
                else:
                    wider[tp] = (max(start - 4 * (stop - start), lows[tp]), start)
            windows = wider
        for tp in windows:
            original, end = wanted[tp]
            logger.warning("changelog tail not found in time topic=%s partition=%d end=%d",
                           tp.topic, tp.partition, end)
            found[original] = end - 1
    finally:
        await consumer.stop()
    logger.info("changelog tails ends=%s last_records=%s",
                {f"{tp.topic}:{tp.partition}": end for tp, end in ends.items()},
                {f"{tp.topic}:{tp.partition}": off for tp, off in found.items()})
    return found


async def holds_records(target: Settings | str, tp: Any, start: int, end: int) -> bool:
    """Whether offsets ``start`` to ``end - 1`` of ``tp`` hold a committed record: whether the
    last one before ``end`` is at ``start`` or later. A backlog of transaction markers and
    aborted records holds none (a transactional producer upstream leaves one marker after each
    partition's last record, past the offset a reader commits).

    Read for ``BACKLOG_READ_S`` at most (not settled by then, the answer is yes); raises
    ``TimeoutError`` when the whole lookup takes over ``BACKLOG_LOOKUP_S``.
    """
    async with asyncio.timeout(BACKLOG_LOOKUP_S):
        last = await last_record_offsets(target, {tp: end}, BACKLOG_READ_S)
    return last[tp] >= start


async def read_committed_range(settings: Settings, topic: str, partition: int, start: int,
                               stop: int) -> list[tuple[bytes | None, bytes | None, int]]:
    """(key, value, offset) of the committed records of ``topic``:``partition`` with
    ``start <= offset <= stop``, in offset order (``stop`` may be a transaction marker)."""
    from aiokafka import TopicPartition

    tp = TopicPartition(topic, partition)
    consumer = kafka_clients.aio_consumer(
        settings, enable_auto_commit=False, isolation_level="read_committed",
        auto_offset_reset="earliest", client_id="fraudstream-changelog-range",
        fetch_max_wait_ms=20, max_partition_fetch_bytes=4_194_304)
    await kafka_clients.start_bounded(consumer)
    found: list[tuple[bytes | None, bytes | None, int]] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        # The position moves past markers and aborted records, which are never returned.
        while await consumer.position(tp) <= stop:
            batches = await consumer.getmany(tp, timeout_ms=100)
            found += [(r.key, r.value, r.offset) for r in batches.get(tp, ())
                      if start <= r.offset <= stop]
    finally:
        await consumer.stop()
    return found


async def _read_windows(consumer: Any, windows: Mapping[Any, tuple[int, int]],
                        deadline: float) -> dict[Any, int]:
    """Read each partition's [start, stop); the offset of the last record met in each."""
    for tp, (start, _stop) in windows.items():
        consumer.seek(tp, start)
    last: dict[Any, int] = {}
    open_tps = set(windows)
    while open_tps and time.monotonic() < deadline:
        batches = await consumer.getmany(*open_tps, timeout_ms=100)
        for tp, records in batches.items():
            stop = windows[tp][1]
            for rec in records:
                if rec.offset < stop:
                    last[tp] = max(last.get(tp, -1), rec.offset)
        for tp in list(open_tps):
            # The position moves past markers and aborted records, which are never returned.
            if await consumer.position(tp) >= windows[tp][1]:
                open_tps.discard(tp)
    return last
