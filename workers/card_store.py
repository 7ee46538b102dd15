"""Where the ``cards`` table lives: RocksDB on local disk (default) or process memory.

The scoring step reads one card at a time and writes a whole batch back once its changelog
records are acknowledged by Kafka (``workers.state_tables``). A batch spans partitions, so both
stores here take the partition explicitly instead of from Faust's "current event".

With ``CardRocksStore`` each partition is one RocksDB database under the worker's data
directory, and the last changelog offset it holds is written in the same atomic batch as the
values. A worker restarted (or a standby activated) in the same slot therefore opens its
databases and reads only the changelog records written after that offset, instead of replaying
the whole compacted changelog as the memory store must (measured on this project: about 30,000
records took ~25 s under CPU contention). Because values reach RocksDB only after Kafka has
acknowledged their changelog records, the local copy is never ahead of the changelog: after any
crash it is a prefix of it, and recovery brings it up to date.

A database whose offset lies beyond the end of its changelog partition belongs to another
incarnation of the topic (deleted and created again): it is wiped and rebuilt from Kafka.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from faust.stores import STORES
from faust.stores import memory as faust_memory
from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP

logger = logging.getLogger(__name__)

#: URL schemes under which Faust finds the two stores (``app.Table(..., store=...)``).
ROCKSDB_SCHEME = "cards-rocksdb"
MEMORY_SCHEME = "cards-memory"

#: RocksDB settings sized for a worker that shares a small machine with others: Faust's
#: defaults reserve a 2 GiB block cache and 3 x 64 MiB write buffers per partition.
ROCKSDB_OPTIONS: dict[str, Any] = {
    "driver": "rocksdict",
    "block_cache_size": 64 * 1024 * 1024,
    "block_cache_compressed_size": 0,
    "write_buffer_size": 16 * 1024 * 1024,
    "max_write_buffer_number": 2,
}


#: What ``CardRocksStore.memory_bytes`` reports, and the RocksDB property behind each.
ROCKSDB_MEMORY = {"memtables": "rocksdb.cur-size-all-mem-tables",
                  "block_cache": "rocksdb.block-cache-usage",
                  "table_readers": "rocksdb.estimate-table-readers-mem"}


class PartitionedStore(Protocol):
    """What ``ChangelogTable`` needs of a store: reads and batch writes by partition."""

    def get_in(self, partition: int, key: bytes) -> bytes | None: ...

    def write_batch(self, partition: int, items: Sequence[tuple[bytes, bytes]],
                    changelog_offset: int | None) -> None:
        """Store ``items``; ``changelog_offset`` is the last changelog offset they include."""
        ...

    def delete_batch(self, partition: int, keys: Sequence[bytes],
                     changelog_offset: int | None) -> None:
        """Forget ``keys`` (their tombstones are in the changelog up to ``changelog_offset``)."""
        ...

    def scan(self, partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` entries of ``partition`` in key order, from just after ``after``."""
        ...


class CardRocksStore(faust_rocksdb.Store):
    """Faust's RocksDB store (rocksdict driver), read and written by explicit partition."""

    def get_in(self, partition: int, key: bytes) -> bytes | None:
        value = self._db_for_partition(partition).get(key)
        return None if value is None else bytes(value)

    def write_batch(self, partition: int, items: Sequence[tuple[bytes, bytes]],
                    changelog_offset: int | None) -> None:
        import rocksdict

        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in items:
            batch.put(key, value)
        if changelog_offset is not None:
            # In the same atomic write: the offset never claims values the database lacks.
            batch.put(self.offset_key, str(changelog_offset).encode())
        self._db_for_partition(partition).write(batch)

    def delete_batch(self, partition: int, keys: Sequence[bytes],
                     changelog_offset: int | None) -> None:
        import rocksdict

        batch = rocksdict.WriteBatch(raw_mode=True)
        for key in keys:
            batch.delete(key)
        if changelog_offset is not None:
            batch.put(self.offset_key, str(changelog_offset).encode())
        self._db_for_partition(partition).write(batch)

    def scan(self, partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        db = self._db_for_partition(partition)
        found: list[tuple[bytes, bytes]] = []
        for key, value in (db.items() if after is None else db.items(from_key=after)):
            if key == self.offset_key or key == after:
                continue
            found.append((bytes(key), bytes(value)))
            if len(found) >= limit:
                break
        return found

    async def assign_partitions(self, table: Any, tps: set[TP],
                                generation_id: int = 0) -> None:
        await super().assign_partitions(table, tps, generation_id)
        mine = [tp for tp in tps if tp.topic in table.changelog_topic.topics
                and tp.partition in self._dbs]
        if not mine:
            return
        try:
            ends = await self.app.consumer.highwaters(*mine)
        except Exception as exc:  # the check is a safeguard; recovery still runs
            logger.warning("changelog end offsets unknown, local state not checked error=%r",
                           exc)
            return
        for tp in mine:
            self._drop_if_foreign(tp, ends.get(tp))

    def _drop_if_foreign(self, tp: TP, end: int | None) -> None:
        """Wipe partition ``tp``'s database when it claims offsets its changelog lacks."""
        persisted = self.persisted_offset(tp)
        if persisted is None or end is None or persisted < end:
            return
        logger.warning("local state of %s claims offset %d but the changelog ends at %d "
                       "(topic created again?): rebuilding it from Kafka", tp, persisted, end)
        self.reset_partition(tp.partition)

    def reset_partition(self, partition: int) -> None:
        """Delete partition ``partition``'s database and open it again, empty."""
        db = self._dbs.pop(partition, None)
        if db is not None:
            db.close()
        shutil.rmtree(self.partition_path(partition), ignore_errors=True)
        self._db_for_partition(partition)

    def memory_bytes(self) -> dict[str, int]:
        """RocksDB's own memory over this worker's open databases: memtables, block cache,
        table readers (the part of a worker's memory that grows up to these caps)."""
        totals = dict.fromkeys(ROCKSDB_MEMORY, 0)
        for db in list(self._dbs.values()):
            for kind, prop in ROCKSDB_MEMORY.items():
                totals[kind] += int(db.property_int_value(prop) or 0)
        return totals

    def partitions_on_disk(self) -> Iterable[int]:
        """Partitions whose database is open in this process."""
        return sorted(self._dbs)


class CardMemoryStore(faust_memory.Store):
    """Faust's memory store with the same partition-explicit interface."""

    def get_in(self, partition: int, key: bytes) -> bytes | None:
        return self.data.get(key)

    def write_batch(self, partition: int, items: Sequence[tuple[bytes, bytes]],
                    changelog_offset: int | None) -> None:
        data, key_partition = self.data, self._key_partition
        for key, value in items:
            data[key] = value
            # Lets the store drop the key when its partition moves elsewhere.
            key_partition[key] = partition

    def delete_batch(self, partition: int, keys: Sequence[bytes],
                     changelog_offset: int | None) -> None:
        for key in keys:
            self.data.pop(key, None)
            self._key_partition.pop(key, None)

    def scan(self, partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        # Sorted on each call: fine for the memory store's sizes (the default is RocksDB).
        keys = sorted(k for k, p in self._key_partition.items()
                      if p == partition and (after is None or k > after))
        return [(k, self.data[k]) for k in keys[:limit] if k in self.data]


def register() -> None:
    """Make both stores known to Faust under their URL schemes (idempotent)."""
    STORES.aliases[ROCKSDB_SCHEME] = f"{__name__}:CardRocksStore"
    STORES.aliases[MEMORY_SCHEME] = f"{__name__}:CardMemoryStore"


def table_store(kind: str) -> tuple[str, dict[str, Any] | None]:
    """(store URL, store options) of the ``cards`` table for FRAUDSTREAM_TABLE_STORE."""
    register()
    # "scheme:cards", not "scheme://": Faust takes an empty store URL (yarl's URL of
    # "scheme://" is falsy) for no store at all and silently uses the app's default store.
    # The path names the table's files under the app's table folder.
    if kind == "rocksdb":
        return f"{ROCKSDB_SCHEME}:cards", dict(ROCKSDB_OPTIONS)
    if kind == "memory":
        return f"{MEMORY_SCHEME}:cards", None
    raise ValueError(f"unknown table store {kind!r}; use rocksdb or memory")
