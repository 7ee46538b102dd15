"""Idle cards leave the card table in event time, a chunk at a time, never mid-batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from fraudstream.features.windows import DAY_S
from fraudstream.workers.card_expiry import CardExpiry
from fraudstream.workers.card_record import CardRecord, Decision
from fraudstream.workers.state_tables import ChangelogTable, DictTable
from tests.unit.workers.test_card_store import AckingSink, cards_table

NOW = 1_750_000_000


def card_seen_at(ts: int) -> list[object]:
    record = CardRecord()
    record.state.observe(ts, 12.5)
    record.remember(Decision("tx", ts, 0, 1, 0.1, "approve", "v1"))
    return record.to_wire()


def filled(ages_days: dict[bytes, float], partition: int = 0) -> DictTable:
    table = DictTable()
    asyncio.run(table.put_many([(key, partition, card_seen_at(int(NOW - age * DAY_S)))
                                for key, age in ages_days.items()]))
    return table


def test_last_seen_reads_the_newest_transaction_time_off_the_wire() -> None:
    assert CardRecord.last_seen(card_seen_at(NOW)) == NOW
    assert CardRecord.last_seen(CardRecord().to_wire()) is None
    assert CardRecord.last_seen(None) is None


def test_cards_idle_longer_than_the_limit_in_event_time_are_removed() -> None:
    table = filled({b"old": 40, b"edge": 31.01, b"young": 30.99, b"today": 0})
    expiry = CardExpiry(table, asyncio.Lock(), idle_s=31 * DAY_S)
    assert asyncio.run(expiry.sweep([0], {0: NOW})) == 2
    assert sorted(table.data) == [b"today", b"young"]


def test_the_clock_is_the_partitions_newest_event_not_the_wall_clock() -> None:
    # Replaying last year's data must not wipe the table; a partition not scored yet is kept.
    table = filled({b"a": 40, b"b": 40})
    expiry = CardExpiry(table, asyncio.Lock(), idle_s=31 * DAY_S)
    assert asyncio.run(expiry.sweep([0], {0: NOW - 20 * DAY_S})) == 0
    assert asyncio.run(expiry.sweep([0, 1], {})) == 0
    assert sorted(table.data) == [b"a", b"b"]


def test_a_sweep_reads_one_chunk_per_partition_and_starts_over_after_the_last() -> None:
    table = filled({b"k%d" % i: 40 for i in range(5)})
    asyncio.run(table.put_many([(b"fresh", 0, card_seen_at(NOW))]))
    expiry = CardExpiry(table, asyncio.Lock(), idle_s=31 * DAY_S, chunk=2)
    seen: list[bytes | None] = []
    removed = []
    for _ in range(5):
        removed.append(asyncio.run(expiry.sweep([0], {0: NOW})))
        seen.append(expiry._cursor[0])
    # Key order: fresh, k0 | k1, k2 | k3, k4 | (nothing after k4: start over) | fresh
    assert removed == [1, 2, 2, 0, 0]
    assert seen == [b"k0", b"k2", b"k4", None, None]
    assert list(table.data) == [b"fresh"]


def test_the_sweep_waits_for_a_batch_that_holds_the_lock() -> None:
    table = filled({b"old": 40})
    lock = asyncio.Lock()
    expiry = CardExpiry(table, lock, idle_s=31 * DAY_S)

    async def scenario() -> list[str]:
        events: list[str] = []
        async with lock:  # a batch has read the card and is about to write it back
            sweep = asyncio.create_task(expiry.sweep([0], {0: NOW}))
            await asyncio.sleep(0.01)
            events.append("still there" if b"old" in table.data else "removed mid-batch")
            await table.put_many([(b"old", 0, card_seen_at(NOW))])  # the batch's write
        await sweep
        events.append("kept" if b"old" in table.data else "removed")
        return events

    assert asyncio.run(scenario()) == ["still there", "kept"]


def test_removed_cards_get_tombstones_and_leave_the_store_after_the_ack(
        tmp_path: Path) -> None:
    table = cards_table(tmp_path, "rocksdb")
    changelog = table.changelog_topic.get_topic_name()
    sink = AckingSink({(changelog, 1): 30})
    cards = ChangelogTable(table, sink)
    table.data.write_batch(1, [(b"a", orjson.dumps([1])), (b"b", orjson.dumps([2]))], 20)
    asyncio.run(cards.delete_many([(b"a", 1)]))
    assert sink.added == [(changelog, b"a", None, 1)]
    assert cards.get(b"a", 1) is None and cards.get(b"b", 1) == [2]
    assert cards.scan(1, None, 10) == [(b"b", [2])]  # the offset marker is not a card


def test_a_rocksdb_scan_resumes_just_after_the_key_it_was_given(tmp_path: Path) -> None:
    store = cards_table(tmp_path, "rocksdb").data
    store.write_batch(2, [(b"c%d" % i, b"[%d]" % i) for i in range(5)], 4)
    assert [k for k, _v in store.scan(2, None, 2)] == [b"c0", b"c1"]
    assert [k for k, _v in store.scan(2, b"c1", 2)] == [b"c2", b"c3"]
    assert [k for k, _v in store.scan(2, b"c3", 2)] == [b"c4"]
    store.delete_batch(2, [b"c0", b"c4"], 6)
    assert [k for k, _v in store.scan(2, None, 9)] == [b"c1", b"c2", b"c3"]


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_both_stores_scan_only_the_partition_asked(tmp_path: Path, kind: str) -> None:
    store = cards_table(tmp_path, kind).data
    store.write_batch(0, [(b"a", b"[0]")], 1)
    store.write_batch(1, [(b"b", b"[1]")], 1)
    assert store.scan(0, None, 9) == [(b"a", b"[0]")]
    assert store.scan(1, None, 9) == [(b"b", b"[1]")]


def test_a_batch_waiting_for_the_lock_gets_it_between_two_slices_of_a_chunk() -> None:
    events: list[str] = []
    lock = asyncio.Lock()

    class Recorded(DictTable):
        def scan(self, partition: int, after: bytes | None,
                 limit: int) -> list[tuple[bytes, object]]:
            events.append(f"scan {limit}")
            if len(events) == 1:  # a batch arrives while the first slice holds the lock
                asyncio.get_running_loop().create_task(batch())
            return super().scan(partition, after, limit)

    async def batch() -> None:
        async with lock:
            events.append("batch")

    table = Recorded()
    asyncio.run(table.put_many([(b"k%d" % i, 0, card_seen_at(int(NOW - 40 * DAY_S)))
                                for i in range(5)]))
    expiry = CardExpiry(table, lock, idle_s=31 * DAY_S, chunk=4, slice_=2)
    assert asyncio.run(expiry.sweep([0], {0: NOW})) == 4
    assert events == ["scan 2", "batch", "scan 2"]
    assert expiry._cursor[0] == b"k3" and list(table.data) == [b"k4"]
