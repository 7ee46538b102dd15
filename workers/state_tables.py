"""Feature state tables: read one key at a time, written back once per batch.

``ChangelogTable`` keeps the state in a Faust table's store and adds the batch's changelog
records to the batch's output sink, delivered together with its scores. Faust recovers and
replicates the table from that changelog as usual; what it skips is its per-key send path
(one buffered send per assignment), which measured as the worker's main cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from workers.output import Sink


class StateTable(Protocol):
    """What the scoring step needs of a state table."""

    def get(self, key: bytes) -> Any | None: ...

    def put_many(self, items: Sequence[tuple[bytes, int, Any]]) -> None:
        """Store (key, partition, value) entries (made durable by the sink's next flush)."""
        ...


class DictTable:
    """An in-process table (unit tests, the raw benchmark loop)."""

    def __init__(self) -> None:
        self.data: dict[bytes, Any] = {}

    def get(self, key: bytes) -> Any | None:
        return self.data.get(key)

    def put_many(self, items: Sequence[tuple[bytes, int, Any]]) -> None:
        for key, _partition, value in items:
            self.data[key] = value


class ChangelogTable:
    """A Faust table of JSON values whose changelog is written in batches."""

    def __init__(self, table: Any, sink: Sink) -> None:
        self.table = table
        self.sink = sink

    def get(self, key: bytes) -> Any | None:
        raw = self.table.data.get(key)
        return None if raw is None else orjson.loads(raw)

    def put_many(self, items: Sequence[tuple[bytes, int, Any]]) -> None:
        store = self.table.data
        topic = self.table.changelog_topic.get_topic_name()
        key_partitions = getattr(store, "_key_partition", None)
        for key, partition, value in items:
            raw = orjson.dumps(value)
            store[key] = raw
            if key_partitions is not None:
                # Lets the memory store drop the key when its partition moves elsewhere.
                key_partitions[key] = partition
            self.sink.add(topic, key, raw, partition)
