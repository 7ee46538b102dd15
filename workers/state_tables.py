"""Feature state tables: read one key at a time, written back once per batch.

``ChangelogTable`` keeps the state in a Faust table's store and adds the batch's changelog
records to the batch's output sink and flushes them before the batch's scores. Faust recovers
the table from that changelog as usual; what it skips is its per-key send path (one buffered
send per assignment), which measured as the worker's main cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol, cast

import orjson

from workers.card_store import PartitionedStore
from workers.output import Sink


class StateTable(Protocol):
    """What the scoring step needs of a state table."""

    def get(self, key: bytes, partition: int) -> Any | None: ...

    async def put_many(self, items: Sequence[tuple[bytes, int, Any]]) -> None:
        """Store (key, partition, value) entries; durable (in Kafka) when this returns."""
        ...


class ExpiringTable(StateTable, Protocol):
    """A state table whose entries can be listed and removed (card expiry)."""

    def scan(self, partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, Any]]:
        """Up to ``limit`` (key, value) of ``partition`` in key order, after key ``after``."""
        ...

    async def delete_many(self, items: Sequence[tuple[bytes, int]]) -> None:
        """Remove (key, partition) entries; durable (tombstones in Kafka) when this returns."""
        ...


class DictTable:
    """An in-process table (unit tests, the raw benchmark loop)."""

    def __init__(self) -> None:
        self.data: dict[bytes, Any] = {}
        self.partitions: dict[bytes, int] = {}

    def get(self, key: bytes, partition: int) -> Any | None:
        return self.data.get(key)

    async def put_many(self, items: Sequence[tuple[bytes, int, Any]]) -> None:
        for key, partition, value in items:
            self.data[key] = value
            self.partitions[key] = partition

    def scan(self, partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, Any]]:
        keys = sorted(k for k, p in self.partitions.items()
                      if p == partition and (after is None or k > after))
        return [(k, self.data[k]) for k in keys[:limit]]

    async def delete_many(self, items: Sequence[tuple[bytes, int]]) -> None:
        for key, _partition in items:
            self.data.pop(key, None)
            self.partitions.pop(key, None)


class ChangelogTable:
    """A Faust table of JSON values whose changelog is written in batches.

    Values reach the table's local store only after Kafka acknowledged their changelog
    records, together with the changelog offset they reach: the local copy (kept on disk by
    the RocksDB store) is then always a prefix of the changelog, which is what lets a restarted
    worker trust it and read only the changelog's tail.
    """

    def __init__(self, table: Any, sink: Sink) -> None:
        self.table = table
        self.sink = sink

    @property
    def store(self) -> PartitionedStore:
        return cast(PartitionedStore, self.table.data)

    def get(self, key: bytes, partition: int) -> Any | None:
        raw = self.store.get_in(partition, key)
        return None if raw is None else orjson.loads(raw)

    async def put_many(self, items: Sequence[tuple[bytes, int, Any]]) -> None:
        topic = self.table.changelog_topic.get_topic_name()
        by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for key, partition, value in items:
            raw = orjson.dumps(value)
            by_partition[partition].append((key, raw))
            self.sink.add(topic, key, raw, partition)
        acked = await self.sink.flush()
        store = self.store
        for partition, written in by_partition.items():
            store.write_batch(partition, written, acked.get((topic, partition)))

    def scan(self, partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, Any]]:
        return [(key, orjson.loads(raw)) for key, raw in self.store.scan(partition, after, limit)]

    async def delete_many(self, items: Sequence[tuple[bytes, int]]) -> None:
        """Tombstones in the changelog first (compaction then drops the keys), then the store."""
        topic = self.table.changelog_topic.get_topic_name()
        by_partition: dict[int, list[bytes]] = defaultdict(list)
        for key, partition in items:
            by_partition[partition].append(key)
            self.sink.add(topic, key, None, partition)
        acked = await self.sink.flush()
        for partition, keys in by_partition.items():
            self.store.delete_batch(partition, keys, acked.get((topic, partition)))
