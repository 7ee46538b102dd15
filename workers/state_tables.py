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

from fraudstream.workers.card_store import PartitionedStore
from fraudstream.workers.output import Sink

#: Values a batch wrote, per partition, waiting for their changelog records to be committed.
Staged = dict[int, list[tuple[bytes, Any]]]


class StateTable(Protocol):
    """What the scoring step needs of a state table."""

    def get(self, key: bytes, partition: int) -> Any | None: ...

    def stage(self, items: Sequence[tuple[bytes, int, Any]]) -> Staged:
        """Add (key, partition, value) entries' changelog records to the batch's sink; the
        table keeps its old values until ``apply``."""
        ...

    def apply(self, staged: Staged, acked: dict[tuple[str, int], int]) -> None:
        """Take staged values once the sink's flush wrote them (``acked``: its last offsets
        per topic-partition); under an atomic sink, partitions absent from ``acked`` did not
        commit and keep their old values."""
        ...

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

    def stage(self, items: Sequence[tuple[bytes, int, Any]]) -> Staged:
        staged: Staged = defaultdict(list)
        for key, partition, value in items:
            staged[partition].append((key, value))
        return staged

    def apply(self, staged: Staged, acked: dict[tuple[str, int], int]) -> None:
        for partition, written in staged.items():
            for key, value in written:
                self.data[key] = value
                self.partitions[key] = partition

    async def put_many(self, items: Sequence[tuple[bytes, int, Any]]) -> None:
        self.apply(self.stage(items), {})

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

    def get_stored(self, key: bytes, partition: int) -> bytes | None:
        """The value as stored (its JSON), for readers that need only a part of it."""
        return self.store.get_in(partition, key)

    @property
    def topic(self) -> str:
        return cast(str, self.table.changelog_topic.get_topic_name())

    def stage(self, items: Sequence[tuple[bytes, int, Any]]) -> Staged:
        topic = self.topic
        staged: Staged = defaultdict(list)
        for key, partition, value in items:
            raw = orjson.dumps(value)
            staged[partition].append((key, raw))
            self.sink.add(topic, key, raw, partition)
        return staged

    def apply(self, staged: Staged, acked: dict[tuple[str, int], int]) -> None:
        topic, store, atomic = self.topic, self.store, self.sink.atomic
        for partition, written in staged.items():
            # Under transactions, a partition whose changelog records did not commit (fenced,
            # or its transaction failed) keeps its old values.
            if not atomic or (topic, partition) in acked:
                store.write_batch(partition, written, acked.get((topic, partition)))

    async def put_many(self, items: Sequence[tuple[bytes, int, Any]]) -> None:
        staged = self.stage(items)
        self.apply(staged, await self.sink.flush())

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
            if not self.sink.atomic or (topic, partition) in acked:
                self.store.delete_batch(partition, keys, acked.get((topic, partition)))
