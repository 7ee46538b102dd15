"""The label path's exactly-once pieces with fake transactions: routing, and applying labels
on the last committed merchant state (catch-up, own writes against echoes, duplicates)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from fraudstream.features import MerchantState
from fraudstream.workers import merchant_labels
from fraudstream.workers.fenced_outputs import FencedError, OutputRecord
from fraudstream.workers.merchant_labels import (
    MerchantLabelApplier,
    MerchantRecord,
    labels_in,
    labels_record,
    route,
    route_fenced,
)
from fraudstream.workers.merchant_states import DecodedTable
from fraudstream.workers.output import key_partition
from fraudstream.workers.processor import RawRecord

CHANGELOG = "merchants-changelog"
NOW = 1_800_000_000.0


class FakeOutputs:
    """Open partitions; each commit appends its records to one shared log (the changelog)
    and returns the offset of its last record, or raises what ``fail`` says."""

    def __init__(self, partitions: set[int]) -> None:
        self.open = set(partitions)
        self.log: list[tuple[str, bytes | None, bytes | None, int]] = []
        self.offsets: dict[int, int] = {}
        self.fail: dict[int, BaseException] = {}

    @property
    def partitions(self) -> set[int]:
        return set(self.open)

    async def commit(self, partition: int, records: Sequence[OutputRecord],
                     next_offset: int | None) -> dict[tuple[str, int], int]:
        if partition not in self.open:
            raise FencedError(f"partition {partition} is not open here")
        if partition in self.fail:
            raise self.fail[partition]
        written: dict[tuple[str, int], int] = {}
        for topic, key, value, out in records:
            self.log.append((topic, key, value, out))
            written[(topic, out)] = len(self.log) - 1
        if next_offset is not None:
            self.offsets[partition] = next_offset
        return written


class TableCopy:
    """A worker's copy of the merchants table: applies the changelog up to ``applied``."""

    def __init__(self, outputs: FakeOutputs) -> None:
        self.outputs = outputs
        self.data: dict[bytes, Any] = {}
        self.applied = -1

    def read_up_to(self, offset: int) -> None:
        for at in range(self.applied + 1, offset + 1):
            _topic, key, value, _p = self.outputs.log[at]
            assert key is not None and value is not None
            self.data[key] = orjson.loads(value)
        self.applied = max(self.applied, offset)

    def catch_up(self) -> None:
        self.read_up_to(len(self.outputs.log) - 1)


def labels(partition: int, first: int, n: int, key: bytes = b"M1") -> list[RawRecord]:
    """``n`` merchant-labels records from ``first``, every third a fraud, distinct seconds."""
    return [RawRecord("merchant-labels", partition, o, key,
                      orjson.dumps([1_700_000_000 + o, int(o % 3 == 0)]), 0)
            for o in range(first, first + n)]


def counts(wire: Any) -> tuple[int, int]:
    state = MerchantState.from_wire(wire)
    entries = [e for tier in state.levels for e in tier.entries()]
    return sum(n for _t, n, _f in entries), sum(f for _t, _n, f in entries)


def applier(outputs: FakeOutputs, table: TableCopy, target: list[int] | None = None,
            reads: list[tuple[int, int]] | None = None,
            slice_s: float = merchant_labels.SLICE_S) -> MerchantLabelApplier:
    """``target``: what the tail searches answer in turn (default: the log's last record);
    ``reads`` records the ranges read from the log."""
    async def changelog_target() -> int:
        return target.pop(0) if target else len(outputs.log) - 1

    async def changelog_records(start: int, stop: int
                                ) -> list[tuple[bytes | None, bytes | None, int]]:
        if reads is not None:
            reads.append((start, stop))
        return [(key, value, at) for at, (_t, key, value, _p) in enumerate(outputs.log)
                if start <= at <= stop]

    return MerchantLabelApplier(outputs=outputs,  # type: ignore[arg-type]
                                changelog_topic=CHANGELOG, table=table.data,
                                applied_offset=lambda: table.applied,
                                changelog_target=changelog_target,
                                changelog_records=changelog_records, slice_s=slice_s)


def test_the_applied_offset_rides_along_the_wire_form_without_changing_features() -> None:
    record = MerchantRecord()
    for r in labels(2, 10, 50):
        record.observe(r.partition, r.offset, r.value)
    wire = record.to_wire()
    assert wire["o"] == [2, 59]
    plain = MerchantState.from_wire(wire)
    assert plain == record.state
    assert plain.features(1_700_000_000 + 90_000, 3600) == record.state.features(
        1_700_000_000 + 90_000, 3600)
    again = MerchantRecord.from_wire(orjson.loads(orjson.dumps(wire)))
    assert again.applied == (2, 59) and again.state == record.state
    assert again.seen(2, 59) and again.seen(2, 3) and not again.seen(2, 60)
    assert not again.seen(1, 3), "an offset of another partition says nothing"
    # The forms written before: nothing applied that could come again.
    assert MerchantRecord.from_wire(record.state.to_wire()).applied is None
    assert MerchantRecord.from_wire([[19_000, 2, 1]]).applied is None
    assert MerchantRecord.from_wire(None).applied is None


def label_record(partition: int, offset: int, merchant: str, fraud: int = 0) -> RawRecord:
    body = {"transaction_id": f"t{offset}", "card_id": "c1", "merchant_id": merchant,
            "is_fraud": fraud, "timestamp": "2026-11-30T10:00:00Z"}
    return RawRecord("labels", partition, offset, b"c1", orjson.dumps(body), 0)


def test_route_groups_by_labels_partition_and_commits_past_rejected_labels() -> None:
    batch = [label_record(0, 5, "MA", 1), label_record(0, 6, "MB"),
             RawRecord("labels", 0, 7, b"c1", b"not json", 0), label_record(3, 40, "MA"),
             RawRecord("labels", 1, 9, b"c1", b"{}", 0)]
    routed = route(batch, "ml", 4, NOW, 86_400 * 400)
    assert routed.next_offsets == {0: 8, 1: 10, 3: 41}
    assert routed.rejected == 2
    ts = 1_796_032_800  # 2026-11-30T10:00:00Z
    # "MA" and "MB" land on partition 3 of 4 and 1 of 4 under Kafka's default partitioner.
    assert (key_partition(b"MA", 4), key_partition(b"MB", 4)) == (3, 1)
    assert routed.records[0] == [("ml", None, b'[["MA",1796032800,1]]', 3),
                                 ("ml", None, b'[["MB",1796032800,0]]', 1)]
    assert routed.records[3] == [("ml", None, b'[["MA",1796032800,0]]', 3)]
    assert labels_in(None, routed.records[0][0][2]) == [(b"MA", ts, 1)]
    assert 1 not in routed.records


def test_route_puts_a_partitions_labels_in_one_record_up_to_the_cap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merchant_labels, "LABELS_PER_RECORD", 2)
    # "MA", "MC" and "MQ" share partition 3 of 4; "MB" is on 1.
    assert [key_partition(m, 4) for m in (b"MA", b"MB", b"MC", b"MQ")] == [3, 1, 3, 3]
    batch = [label_record(0, 5, "MA", 1), label_record(0, 6, "MB"), label_record(0, 7, "MC"),
             label_record(0, 8, "MA"), label_record(0, 9, "MQ", 1)]
    routed = route(batch, "ml", 4, NOW, 86_400 * 400)
    ts = 1_796_032_800
    assert [(p, labels_in(k, v)) for _t, k, v, p in routed.records[0]] == [
        (3, [(b"MA", ts, 1), (b"MC", ts, 0)]), (3, [(b"MA", ts, 0), (b"MQ", ts, 1)]),
        (1, [(b"MB", ts, 0)])]
    assert routed.next_offsets == {0: 10}


def test_labels_in_reads_both_record_forms_and_refuses_anything_else() -> None:
    assert labels_in(None, labels_record([("M1", 5, 1), ("M2", 6, 0)])) == [
        (b"M1", 5, 1), (b"M2", 6, 0)]
    assert labels_in(b"M1", b"[1700000000,1]") == [(b"M1", 1_700_000_000, 1)]
    assert labels_in(None, b"[]") == []
    for key, value in [(None, b"[1700000000,1]"), (b"M1", b"[1700000000,2]"), (None, b"{}"),
                       (None, b"not json"), (None, None), (None, b'[["M1",5]]'),
                       (None, b'[["M1","5",1]]'), (None, b'[["",5,1]]'), (None, b'[[7,5,1]]'),
                       (None, b'[["M1",5,3]]'), (None, b'[["M1",5.5,1]]')]:
        assert labels_in(key, value) is None, (key, value)


def test_route_fenced_drops_partitions_not_open_here() -> None:
    outputs = FakeOutputs({0})
    routed = route([label_record(0, 5, "MA"), label_record(2, 7, "MA")], "ml", 4, NOW,
                   86_400 * 400)
    done = asyncio.run(route_fenced(outputs, routed))  # type: ignore[arg-type]
    assert done.partitions == {0} and done.fenced == {2}
    assert outputs.offsets == {0: 6}
    assert [labels_in(key, v)[0][0] for _t, key, v, _p in outputs.log  # type: ignore[index]
            ] == [b"MA"]


def test_labels_build_on_the_previous_owners_last_state_the_table_copy_has_not_read() -> None:
    outputs = FakeOutputs({1})
    table = TableCopy(outputs)
    outputs.log.append((CHANGELOG, b"M0", orjson.dumps(MerchantRecord().to_wire()), 0))
    table.catch_up()
    previous = MerchantRecord()
    for r in labels(1, 0, 30):
        previous.observe(r.partition, r.offset, r.value)
    outputs.log.append((CHANGELOG, b"M1", orjson.dumps(previous.to_wire()), 0))
    reads: list[tuple[int, int]] = []
    step = applier(outputs, table, reads=reads)

    async def run() -> None:
        # The copy never moves here (in a worker, Faust stops feeding it while this agent's
        # buffer is full): the previous state comes from the changelog itself.
        async with asyncio.timeout(2):
            await step.apply(labels(1, 30, 10))

    asyncio.run(run())
    assert reads == [(1, 1)], "only what the copy lacks is read"
    table.catch_up()
    assert counts(table.data[b"M1"]) == (40, 14)
    assert outputs.offsets == {1: 40}


def test_each_batch_builds_on_its_own_last_write_not_on_an_older_echo() -> None:
    outputs = FakeOutputs({1})
    table = TableCopy(outputs)
    step = applier(outputs, table)

    async def run() -> None:
        for first in range(0, 50, 10):
            # The copy lags: it has read only the first batch's write (an older echo).
            await step.apply(labels(1, first, 10))
            if first == 0:
                table.catch_up()

    asyncio.run(run())
    table.catch_up()
    assert counts(table.data[b"M1"]) == (50, 17)


def test_own_writes_are_forgotten_once_the_copy_has_applied_them() -> None:
    outputs = FakeOutputs({1})
    table = TableCopy(outputs)
    step = applier(outputs, table)
    asyncio.run(step.apply(labels(1, 0, 10)))
    table.catch_up()
    asyncio.run(step.apply(labels(1, 10, 10)))
    assert len(step._written) == 1
    table.catch_up()
    asyncio.run(step.apply(labels(1, 20, 5, key=b"M2")))
    assert b"M1" not in step._written
    table.catch_up()
    assert counts(table.data[b"M1"]) == (20, 7) and counts(table.data[b"M2"]) == (5, 2)


def test_labels_delivered_again_are_skipped() -> None:
    outputs = FakeOutputs({1})
    table = TableCopy(outputs)
    step = applier(outputs, table)
    asyncio.run(step.apply(labels(1, 0, 10)))
    done = asyncio.run(step.apply(labels(1, 5, 10)))
    assert (done.applied, done.duplicates) == (5, 5)
    table.catch_up()
    assert counts(table.data[b"M1"]) == (15, 5)


def test_a_fenced_partition_keeps_nothing_and_the_next_owner_builds_on_the_log() -> None:
    outputs = FakeOutputs({1, 2})
    table = TableCopy(outputs)
    step = applier(outputs, table)
    asyncio.run(step.apply(labels(1, 0, 10)))
    outputs.open.discard(1)  # another worker took partition 1
    done = asyncio.run(step.apply(labels(1, 10, 10) + labels(2, 0, 4, key=b"M2")))
    assert done.fenced == 10 and done.applied == 4 and done.committed == {2: 4}
    # Later batches of the closed partition are dropped too.
    assert asyncio.run(step.apply(labels(1, 20, 3))).fenced == 3
    table.catch_up()
    assert counts(table.data[b"M1"]) == (10, 4)


def test_another_failure_raises_and_keeps_nothing_of_that_partition() -> None:
    outputs = FakeOutputs({1})
    table = TableCopy(outputs)
    step = applier(outputs, table)
    asyncio.run(step.apply(labels(1, 0, 10)))  # kept as its own write: the copy lags
    outputs.fail[1] = RuntimeError("broker gone")
    with pytest.raises(RuntimeError):
        asyncio.run(step.apply(labels(1, 10, 10)))
    del outputs.fail[1]
    # (Only the first half comes again here, so a state changed by the failed batch shows.)
    asyncio.run(step.apply(labels(1, 10, 5)))
    table.catch_up()
    assert counts(table.data[b"M1"]) == (15, 5)


def test_a_new_assignment_forgets_own_writes_and_catches_up_again() -> None:
    outputs = FakeOutputs({1})
    table = TableCopy(outputs)
    step = applier(outputs, table)
    asyncio.run(step.apply(labels(1, 0, 10)))
    # Meanwhile another owner held partition 1 and committed 10 more labels.
    other = MerchantRecord.from_wire(orjson.loads(outputs.log[-1][2] or b""))
    for r in labels(1, 10, 10):
        other.observe(r.partition, r.offset, r.value)
    outputs.log.append((CHANGELOG, b"M1", orjson.dumps(other.to_wire()), 0))
    step.reset()
    asyncio.run(step.apply(labels(1, 20, 10)))
    table.catch_up()
    assert counts(table.data[b"M1"]) == (30, 10)


def test_a_target_on_a_marker_reads_up_to_it() -> None:
    outputs = FakeOutputs({1})
    table = TableCopy(outputs)
    previous = MerchantRecord()
    for r in labels(1, 0, 3):
        previous.observe(r.partition, r.offset, r.value)
    outputs.log.append((CHANGELOG, b"M1", orjson.dumps(previous.to_wire()), 0))
    # The tail search gave up and aimed at the end itself (a marker, never a record).
    step = applier(outputs, table, target=[1])

    async def run() -> None:
        async with asyncio.timeout(2):
            await step.apply(labels(1, 3, 3))

    asyncio.run(run())
    table.catch_up()
    assert counts(table.data[b"M1"]) == (6, 2)


def batch_record(partition: int, offset: int, labels: list[tuple[str, int, int]]) -> RawRecord:
    """One merchant-labels record of the batched form (what ``route`` writes)."""
    return RawRecord("merchant-labels", partition, offset, None, labels_record(labels), 0)


def test_a_record_of_many_labels_applies_each_of_them_once() -> None:
    outputs = FakeOutputs({1})
    table = TableCopy(outputs)
    step = applier(outputs, table)
    t = 1_700_000_000
    first = batch_record(1, 0, [("M1", t, 1), ("M2", t + 1, 0), ("M1", t + 2, 0)])
    done = asyncio.run(step.apply([first, batch_record(1, 1, [("M1", t + 3, 1)])]))
    assert (done.applied, done.duplicates, done.rejected) == (4, 0, 0)
    assert outputs.offsets == {1: 2}
    # Delivered again (a stale fetch): every label of the record is skipped, for each merchant.
    again = asyncio.run(step.apply([first]))
    assert (again.applied, again.duplicates) == (0, 3)
    # The first form, one label keyed by its merchant, is still applied.
    asyncio.run(step.apply(labels(1, 2, 2)))
    table.catch_up()
    assert counts(table.data[b"M1"]) == (5, 3) and counts(table.data[b"M2"]) == (1, 0)


def test_a_record_in_no_known_form_is_skipped_and_its_offset_commits() -> None:
    outputs = FakeOutputs({1})
    table = TableCopy(outputs)
    step = applier(outputs, table)
    bad = RawRecord("merchant-labels", 1, 0, None, b'[["M1","soon",1]]', 0)
    done = asyncio.run(step.apply([bad, batch_record(1, 1, [("M1", 1_700_000_000, 1)])]))
    assert (done.applied, done.rejected) == (1, 1)
    assert outputs.offsets == {1: 2}
    table.catch_up()
    assert counts(table.data[b"M1"]) == (1, 1)


def test_a_committed_state_is_decoded_by_nobody_once_the_copy_holds_it() -> None:
    """The applier's own records and the scoring step's decoded states take the states it
    wrote as they are (the copy holds the bytes written: a table of raw values)."""
    outputs = FakeOutputs({1})
    raw: dict[bytes, bytes] = {}
    scoring = DecodedTable(raw, MerchantState.from_wire, orjson.loads)
    heard: list[tuple[bytes, bytes, MerchantState]] = []

    async def no_target() -> int:
        return len(outputs.log) - 1

    async def no_records(start: int, stop: int) -> list[tuple[bytes | None, bytes | None, int]]:
        return []

    def written(key: bytes, stored: bytes, state: MerchantState) -> None:
        heard.append((key, stored, state))
        scoring.prime(key, stored, state)

    applied = [-1]
    step = MerchantLabelApplier(
        outputs=outputs, changelog_topic=CHANGELOG, table=raw,  # type: ignore[arg-type]
        applied_offset=lambda: applied[0], changelog_target=no_target,
        changelog_records=no_records, decode=orjson.loads, on_written=written)

    def copy_catches_up() -> None:
        for at in range(applied[0] + 1, len(outputs.log)):
            _t, key, value, _p = outputs.log[at]
            assert key is not None and value is not None
            raw[key] = bytes(value)  # an equal value, not the same object
        applied[0] = len(outputs.log) - 1

    asyncio.run(step.apply(labels(1, 0, 10)))
    [(key, stored, state)] = heard
    assert key == b"M1" and MerchantState.from_wire(orjson.loads(stored)) == state
    copy_catches_up()
    before = step._stored.decoded
    assert scoring.get(b"M1") is state and scoring.decoded == 0
    asyncio.run(step.apply(labels(1, 10, 10)))
    assert step._stored.decoded == before, "its own write came back decoded already"
    copy_catches_up()
    assert counts(orjson.loads(raw[b"M1"])) == (20, 7)
    assert scoring.get(b"M1") is heard[-1][2]


def test_the_scoring_step_reads_a_committed_state_before_the_copy_holds_it() -> None:
    from fraudstream.workers.merchant_states import MerchantStates

    outputs = FakeOutputs({1})
    table = TableCopy(outputs)
    step = applier(outputs, table)
    scoring = MerchantStates(table.data, committed=step.committed_state)
    asyncio.run(step.apply(labels(1, 0, 10)))
    assert b"M1" not in table.data, "the copy has not read the changelog back yet"
    fresh = scoring.get(b"M1")
    assert fresh is step._written[b"M1"][0].state
    assert counts(fresh.to_wire()) == (10, 4)
    assert counts(MerchantStates(table.data).get(b"M1").to_wire()) == (0, 0)
    table.catch_up()
    step.reset()  # a new assignment: own writes forgotten, the copy is read again
    assert counts(scoring.get(b"M1").to_wire()) == (10, 4) and scoring.decoded == 1


def test_a_batch_of_many_merchants_lets_other_tasks_run_and_writes_the_same() -> None:
    """A second's labels held a worker's event loop for up to 66 ms in one go, and the
    scoring batches due meanwhile waited (2026-12-03): the work now gives the loop a turn
    between slices, and what it commits does not depend on where the turns fall."""
    t = 1_700_000_000
    batch = [batch_record(1, o, [(f"M{m:03d}", t + o * 100 + m, int(m % 7 == 0))
                                 for m in range(o * 40, o * 40 + 40)]) for o in range(5)]

    def run(slice_s: float) -> tuple[list[Any], dict[int, int], int]:
        outputs = FakeOutputs({1})
        step = applier(outputs, TableCopy(outputs), slice_s=slice_s)
        ticks = 0

        async def scoring() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        async def both() -> int:
            other = asyncio.create_task(scoring())
            await asyncio.sleep(0)
            before = ticks
            done = await step.apply(batch)
            assert done.applied == 200
            other.cancel()
            return ticks - before

        turns = asyncio.run(both())
        return outputs.log, outputs.offsets, turns

    sliced_log, sliced_offsets, sliced_ticks = run(0.0)
    whole_log, whole_offsets, whole_ticks = run(3600.0)
    # 200 merchants: a turn before each one's update, encoding and bookkeeping.
    assert sliced_ticks >= 600 and whole_ticks < 10
    assert sliced_log == whole_log and sliced_offsets == whole_offsets == {1: 5}


def test_each_state_the_label_path_keeps_occupies_about_its_own_size() -> None:
    """The states the applier wrote stay cached (its own and the scoring step's decoded-state
    caches) until the merchant's next write. orjson 3.12+ returns each encoding in a buffer of
    4 KiB or more: kept as it is, a 140-byte state occupied about 10 KiB, and in a soak a
    worker's memory grew with every merchant whose state changed (2026-12-02)."""
    import gc
    import tracemalloc

    outputs = FakeOutputs({1})
    raw: dict[bytes, bytes] = {}
    scoring = DecodedTable(raw, MerchantState.from_wire, orjson.loads)
    step = MerchantLabelApplier(
        outputs=outputs, changelog_topic=CHANGELOG, table=raw,  # type: ignore[arg-type]
        applied_offset=lambda: -1, changelog_target=lambda: asyncio.sleep(0, -1),
        changelog_records=lambda start, stop: asyncio.sleep(0, []), decode=orjson.loads,
        on_written=lambda key, stored, state: scoring.prime(key, stored, state))
    merchants, per_merchant = 200, 12
    batch = [RawRecord("merchant-labels", 1, m * per_merchant + i, f"M{m:04d}".encode(),
                       orjson.dumps([1_700_000_000 + 61 * i, int(i % 5 == 0)]), 0)
             for m in range(merchants) for i in range(per_merchant)]
    tracemalloc.start()
    try:
        asyncio.run(step.apply(batch))
        outputs.log.clear()  # what Kafka took
        gc.collect()
        stored = [s for s, _state in scoring._cache.values()]
        where = tracemalloc.get_object_traceback(stored[0])
        assert where is not None
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, where[0].filename, where[0].lineno)])
    finally:
        tracemalloc.stop()
    assert len(stored) == merchants
    # Every block still allocated where the cached encodings were made is one of them (the
    # batch's other allocations there are gone), and each is about its own length.
    sizes = [trace.size for trace in snapshot.traces]
    assert len(sizes) == merchants
    assert max(sizes) <= max(map(len, stored)) + 64, \
        f"the kept encodings occupy up to {max(sizes)} B for {max(map(len, stored))} B of JSON"
