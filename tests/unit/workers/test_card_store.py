"""The card table's stores (real RocksDB on a temporary folder) and the order of its writes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import faust
import orjson
import pytest
from faust.types import TP

from fraudstream.settings import Settings
from fraudstream.workers.card_store import CardMemoryStore, CardRocksStore, table_store
from fraudstream.workers.faust_bridge import REQUIRED, FaustInternalsChanged, check_internals
from fraudstream.workers.faust_bridge import missing_internals as missing
from fraudstream.workers.output import KafkaBatchSink, ListSink
from fraudstream.workers.state_tables import ChangelogTable
from fraudstream.workers.topics import card_changelog


def cards_table(datadir: Path, kind: str) -> Any:
    """The ``cards`` table as the worker declares it, in an app that is never started."""
    store, options = table_store(kind)
    app = faust.App("store-test", store="memory://", datadir=str(datadir))
    return app.Table("cards", default=None, partitions=4, key_type=bytes, value_type=bytes,
                     store=store, options=options)


def close(store: CardRocksStore) -> None:
    for db in store._dbs.values():
        db.close()
    store._dbs.clear()


def test_the_card_table_gets_the_store_the_setting_names(tmp_path: Path) -> None:
    # An empty store URL ("scheme://") made Faust fall back to the app's memory store silently.
    assert type(cards_table(tmp_path / "a", "rocksdb").data) is CardRocksStore
    assert type(cards_table(tmp_path / "b", "memory").data) is CardMemoryStore
    with pytest.raises(ValueError, match="rocksdb or memory"):
        table_store("disk")


def test_the_changelog_is_the_topic_the_tools_fill(tmp_path: Path) -> None:
    table = cards_table(tmp_path, "memory")
    assert table.changelog_topic.get_topic_name() == card_changelog(
        Settings(app_id="store-test"))


def test_rocksdb_keeps_values_and_their_changelog_offset_across_a_restart(tmp_path: Path) -> None:
    table = cards_table(tmp_path, "rocksdb")
    store = table.data
    changelog = table.changelog_topic.get_topic_name()
    store.write_batch(0, [(b"c1", b"[1]"), (b"c2", b"[2]")], 41)
    store.write_batch(1, [(b"c3", b"[3]")], 7)
    store.write_batch(1, [(b"c3", b"[4]")], None)  # no offset known: the old one stays
    close(store)

    again = cards_table(tmp_path, "rocksdb").data  # a new process in the same slot
    assert again.get_in(0, b"c1") == b"[1]"
    assert again.get_in(1, b"c3") == b"[4]"
    assert again.get_in(0, b"c3") is None  # reads go to the partition named, not a search
    assert again.persisted_offset(TP(changelog, 0)) == 41
    assert again.persisted_offset(TP(changelog, 1)) == 7
    assert again.persisted_offset(TP(changelog, 2)) is None
    assert sorted(again.partitions_on_disk()) == [0, 1, 2]


def test_a_database_ahead_of_its_changelog_is_rebuilt_empty(tmp_path: Path) -> None:
    table = cards_table(tmp_path, "rocksdb")
    store, changelog = table.data, table.changelog_topic.get_topic_name()
    store.write_batch(0, [(b"c1", b"[1]")], 99)  # offset 99: the changelog ends at 100
    store.write_batch(1, [(b"c2", b"[2]")], 99)  # ... but this one's changelog ends at 50
    store._drop_if_foreign(TP(changelog, 0), 100)
    store._drop_if_foreign(TP(changelog, 1), 50)
    store._drop_if_foreign(TP(changelog, 0), None)  # end unknown: left alone
    assert store.get_in(0, b"c1") == b"[1]"
    assert store.persisted_offset(TP(changelog, 0)) == 99
    assert store.get_in(1, b"c2") is None
    assert store.persisted_offset(TP(changelog, 1)) is None


class AckingSink(ListSink):
    """Flushes to a list; answers with the offsets given, or fails with ``error``."""

    def __init__(self, acked: dict[tuple[str, int], int],
                 error: BaseException | None = None) -> None:
        super().__init__()
        self.added: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self.acked, self.error = acked, error

    def add(self, topic: str, key: bytes | None, value: bytes | None,
            partition: int | None = None) -> None:
        self.added.append((topic, key, value, partition))

    async def flush(self) -> dict[tuple[str, int], int]:
        if self.error is not None:
            raise self.error
        return self.acked


def test_state_reaches_the_store_with_its_changelog_offset_once_kafka_acknowledged(
        tmp_path: Path) -> None:
    table = cards_table(tmp_path, "rocksdb")
    changelog = table.changelog_topic.get_topic_name()
    sink = AckingSink({(changelog, 2): 17, ("scores", 2): 3})
    cards = ChangelogTable(table, sink)
    asyncio.run(cards.put_many([(b"c1", 2, {"n": 1}), (b"c2", 3, [1, 2])]))
    assert sink.added == [(changelog, b"c1", orjson.dumps({"n": 1}), 2),
                          (changelog, b"c2", orjson.dumps([1, 2]), 3)]
    assert cards.get(b"c1", 2) == {"n": 1}
    assert cards.get(b"c2", 3) == [1, 2]
    assert table.data.persisted_offset(TP(changelog, 2)) == 17
    assert table.data.persisted_offset(TP(changelog, 3)) is None  # no offset acknowledged


def test_state_kafka_did_not_acknowledge_never_reaches_the_store(tmp_path: Path) -> None:
    # Else a restart would trust local values the changelog lacks (the local copy must stay a
    # prefix of the changelog).
    table = cards_table(tmp_path, "rocksdb")
    cards = ChangelogTable(table, AckingSink({}, error=ConnectionError("broker away")))
    with pytest.raises(ConnectionError):
        asyncio.run(cards.put_many([(b"c1", 0, {"n": 1})]))
    assert cards.get(b"c1", 0) is None


class TinyBatch:
    """Holds two records, as a full Kafka batch would refuse the third."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: None) -> object | None:
        if len(self.records) == 2:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)

    def close(self) -> None:
        """Sent whole (the sink closes each batch before sending it)."""


class Metadata:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


class OffsetProducer:
    """Appends each batch to a per-partition log and answers with its first offset."""

    def __init__(self) -> None:
        self.logs: dict[tuple[str, int], list[bytes]] = {}

    def create_batch(self) -> TinyBatch:
        return TinyBatch()

    async def send_batch(self, batch: TinyBatch, topic: str, partition: int) -> Any:
        log = self.logs.setdefault((topic, partition), [b"older"] * 10)
        first = len(log)
        log.extend(value for _key, value in batch.records)
        done: asyncio.Future[Metadata] = asyncio.get_running_loop().create_future()
        done.set_result(Metadata(topic, partition, first))
        return done

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}


def test_a_flush_reports_the_offset_of_the_last_record_of_each_partition() -> None:
    producer = OffsetProducer()
    sink = KafkaBatchSink(producer)
    for n in range(5):  # three batches: 2 + 2 + 1 records at offsets 10..14
        sink.add("cards-changelog", b"k", b"v%d" % n, 1)
    sink.add("scores", b"k", b"s", 0)
    acked = asyncio.run(sink.flush())
    assert acked == {("cards-changelog", 1): 14, ("scores", 0): 10}
    assert producer.logs[("cards-changelog", 1)][14] == b"v4"
    assert asyncio.run(sink.flush()) == {}  # nothing pending


def test_the_installed_libraries_have_every_internal_the_worker_uses() -> None:
    assert missing() == []
    check_internals()


def test_a_missing_internal_stops_the_worker_with_its_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    gone = ("faust.stores.rocksdb", "Store", "_renamed_in_a_new_release", "a test")
    monkeypatch.setattr("fraudstream.workers.faust_bridge.REQUIRED", (*REQUIRED, gone))
    with pytest.raises(FaustInternalsChanged,
                       match=r"faust\.stores\.rocksdb\.Store\._renamed_in_a_new_release"):
        check_internals()


def test_a_missing_module_value_stops_the_worker_with_its_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from aiokafka.producer import sender

    monkeypatch.delattr(sender, "BACKOFF_OVERRIDE")
    with pytest.raises(FaustInternalsChanged,
                       match=r"aiokafka\.producer\.sender\.BACKOFF_OVERRIDE"):
        check_internals()


def test_a_transaction_refused_as_concurrent_is_retried_after_the_short_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka's AddPartitionsToTxn handler answers CONCURRENT_TRANSACTIONS with the
    module's wait (read at call time), which the worker shortens."""
    from aiokafka.producer import sender
    from aiokafka.protocol.transaction import AddPartitionsToTxnResponse_v0

    from fraudstream.workers.faust_bridge import (
        CONCURRENT_TRANSACTIONS_BACKOFF_S,
        retry_concurrent_transactions_sooner,
    )

    monkeypatch.setattr(sender, "BACKOFF_OVERRIDE", sender.BACKOFF_OVERRIDE)
    retry_concurrent_transactions_sooner()
    assert sender.BACKOFF_OVERRIDE == CONCURRENT_TRANSACTIONS_BACKOFF_S < 0.02

    class Txn:
        txn_partitions: ClassVar[set[Any]] = set()

    class Sender:
        _txn_manager = Txn()
        _retry_backoff = 0.1

    handler = sender.AddPartitionsToTxnHandler(Sender(), {"scores": [0]})
    concurrent_transactions = 51  # Kafka's error code
    refused = AddPartitionsToTxnResponse_v0(
        throttle_time_ms=0, errors=[("scores", [(0, concurrent_transactions)])])
    assert handler.handle_response(refused) == CONCURRENT_TRANSACTIONS_BACKOFF_S


def test_partition_counts_that_would_misroute_records_are_named() -> None:
    from fraudstream.workers.topics import partition_problems

    s = Settings(app_id="pc", partitions=4)
    ok = {"transactions": 4, "scores": 4, "transactions.dlq": 6, "pc-cards-changelog": 4}
    assert partition_problems(s, ok) == []
    assert partition_problems(s, {}) == []  # nothing created yet: nothing to say
    problems = partition_problems(s, {**ok, "scores": 2, "pc-cards-changelog": 8})
    assert len(problems) == 2
    assert "scores has 2 partitions, fewer than transactions (4)" in problems[0]
    assert "pc-cards-changelog has 8 partitions, not 4" in problems[1]
    wrong_setting = partition_problems(Settings(app_id="pc", partitions=2), ok)
    assert any("set FRAUDSTREAM_PARTITIONS=4" in p for p in wrong_setting)


def test_rocksdb_reports_the_memory_it_holds_for_the_card_table(tmp_path: Path) -> None:
    store = cards_table(tmp_path, "rocksdb").data
    empty = store.memory_bytes()
    assert set(empty) == {"memtables", "block_cache", "table_readers"}
    store.write_batch(0, [(b"c%d" % i, b"x" * 1000) for i in range(2000)], 1999)
    grown = store.memory_bytes()
    # ~2 MB written sits in the memtable until RocksDB flushes it.
    assert grown["memtables"] - empty["memtables"] >= 2_000_000


def test_under_transactions_only_committed_partitions_reach_the_store(tmp_path: Path) -> None:
    """An atomic sink's partitions absent from the flush's offsets (fenced, or their
    transaction failed) keep their old values."""
    table = cards_table(tmp_path, "rocksdb")
    changelog = table.changelog_topic.get_topic_name()
    sink = AckingSink({(changelog, 0): 7})
    sink.atomic = True
    cards = ChangelogTable(table, sink)
    staged = cards.stage([(b"c0", 0, {"n": 1}), (b"c1", 1, {"n": 2})])
    assert cards.get(b"c0", 0) is None  # staged values wait for the commit
    cards.apply(staged, asyncio.run(sink.flush()))
    assert cards.get(b"c0", 0) == {"n": 1}
    assert table.data.persisted_offset(TP(changelog, 0)) == 7
    assert cards.get(b"c1", 1) is None
