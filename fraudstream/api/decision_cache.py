"""A bounded in-memory map of the latest decision per transaction, fed from the scores topic."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading

import orjson

from fraudstream.kept_bytes import kept

DEFAULT_MAX_ENTRIES = 200_000


class DecisionCache:
    """Latest score record per transaction id, as raw JSON; the oldest insert is evicted first.

    Records are kept as the JSON bytes read from Kafka (~300 bytes each: the default bound costs
    about 100 MB, where a parsed dict per record would cost several times that). Safe to feed
    from any thread: waiters are woken on their own event loop.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._records: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, transaction_id: str) -> bytes | None:
        """The latest score record of ``transaction_id`` (JSON bytes), or None."""
        with self._lock:
            return self._records.get(transaction_id)

    def put(self, transaction_id: str, record: bytes) -> None:
        """Store ``record`` as the latest decision of ``transaction_id`` and wake its waiters."""
        # At 200,000 entries, orjson's buffers would be 800 MB instead of ~100 MB.
        record = kept(record)
        with self._lock:
            self._records[transaction_id] = record
            self._records.move_to_end(transaction_id)
            while len(self._records) > self.max_entries:
                self._records.popitem(last=False)
            waiters = self._waiters.pop(transaction_id, [])
        for loop, event in waiters:
            # RuntimeError: that waiter's loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def feed(self, value: bytes | None) -> bool:
        """Store one record from the scores topic; False (ignored) if it is not a score record."""
        if not value:
            return False
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:
            return False
        tid = body.get("transaction_id") if isinstance(body, dict) else None
        if not isinstance(tid, str) or not tid:
            return False
        self.put(tid, value)
        return True

    async def wait_for(self, transaction_id: str, timeout_s: float) -> bytes | None:
        """The record of ``transaction_id``, waiting up to ``timeout_s`` for it to arrive."""
        record = self.get(transaction_id)
        if record is not None or timeout_s <= 0:
            return record
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:  # register before re-checking, so a put in between is not missed
            self._waiters.setdefault(transaction_id, []).append(entry)
        try:
            if self.get(transaction_id) is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout_s):
                        await entry[1].wait()
            return self.get(transaction_id)
        finally:
            with self._lock:
                waiting = self._waiters.get(transaction_id)
                if waiting is not None and entry in waiting:
                    waiting.remove(entry)
                    if not waiting:
                        del self._waiters[transaction_id]
