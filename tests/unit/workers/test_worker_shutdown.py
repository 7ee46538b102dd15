"""What a worker closes at shutdown: every Kafka client of its own, each under its path's lock."""

from __future__ import annotations

import asyncio
from typing import Any

from fraudstream.workers.app import WorkerApp


class Client:
    """A producer or reader that records whether its path's lock was held when it closed."""

    def __init__(self, name: str, lock: asyncio.Lock | None, closed: list[tuple[str, bool]]
                 ) -> None:
        self.name, self.lock, self.closed = name, lock, closed

    def _done(self) -> None:
        self.closed.append((self.name, self.lock is None or self.lock.locked()))

    async def close(self) -> None:
        self._done()

    async def stop(self) -> None:
        self._done()


class Applier:
    def __init__(self, outputs: Client, lock: asyncio.Lock) -> None:
        self.outputs, self.lock = outputs, lock


def shut_down() -> list[tuple[str, bool]]:
    closed: list[tuple[str, bool]] = []
    w: Any = WorkerApp.__new__(WorkerApp)
    w.state_lock, w.label_lock, applier_lock = asyncio.Lock(), asyncio.Lock(), asyncio.Lock()
    w.outputs = Client("scoring producers", w.state_lock, closed)
    w._takeover = Client("takeover reader", w.state_lock, closed)
    w.label_outputs = Client("label route producers", w.label_lock, closed)
    w._label_reader = Client("labels reader", w.label_lock, closed)
    w.applier = Applier(Client("label apply producers", applier_lock, closed), applier_lock)
    w._changelog_reader = Client("merchants changelog reader", applier_lock, closed)
    w._stable_offsets = Client("stable offsets", None, closed)
    asyncio.run(w.close_clients())
    return closed


def test_every_kafka_client_of_the_worker_is_closed_once() -> None:
    # The readers were left open before: each kept a connection (and aiokafka's warning about
    # an unclosed consumer) until the process ended.
    assert sorted(name for name, _ in shut_down()) == sorted([
        "scoring producers", "takeover reader", "label route producers", "labels reader",
        "label apply producers", "merchants changelog reader", "stable offsets"])


def test_each_client_closes_under_its_paths_lock() -> None:
    # A batch holds its path's lock from its first read to its commit: closing under the lock
    # never cuts a batch's read or transaction in half.
    assert all(held for _name, held in shut_down())
