"""Feature state tables: read one key at a time, written back once per batch.

``ChangelogTable`` keeps the state in a Faust table's store and writes the batch's changelog
records straight through the producer, awaited with the batch's scores. Faust recovers and
replicates the table from that changelog as usual; what it skips is its per-key send path
(one buffered send per assignment), which measured as the worker's main cost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson

Send = Callable[[str, bytes | None, bytes, int | None], Awaitable[Awaitable[object]]]


class StateTable(Protocol):
    """What the scoring step needs of a state table."""

    def get(self, key: bytes) -> Any | None: ...

    async def put_many(self, items: Sequence[tuple[bytes, int, Any]]) -> list[Awaitable[object]]:
        """Store (key, partition, value) entries; returns the delivery futures of their writes."""
        ...


class DictTable:
    """An in-process table (unit tests, the raw benchmark loop)."""

    def __init__(self) -> None:
        self.data: dict[bytes, Any] = {}

    def get(self, key: bytes) -> Any | None:
        return self.data.get(key)

    async def put_many(self, items: Sequence[tuple[bytes, int, Any]]) -> list[Awaitable[object]]:
        for key, _partition, value in items:
            self.data[key] = value
        return []


class ChangelogTable:
    """A Faust table of JSON values whose changelog is written in batches."""

    def __init__(self, table: Any, send: Send) -> None:
        self.table = table
        self.send = send

    def get(self, key: bytes) -> Any | None:
        raw = self.table.data.get(key)
        return None if raw is None else orjson.loads(raw)

    async def put_many(self, items: Sequence[tuple[bytes, int, Any]]) -> list[Awaitable[object]]:
        store = self.table.data
        topic = self.table.changelog_topic.get_topic_name()
        key_partitions = getattr(store, "_key_partition", None)
        futures = []
        for key, partition, value in items:
            raw = orjson.dumps(value)
            store[key] = raw
            if key_partitions is not None:
                # Lets the memory store drop the key when its partition moves elsewhere.
                key_partitions[key] = partition
            futures.append(await self.send(topic, key, raw, partition))
        return futures
