"""Offset continuity: gaps are found, redeliveries dropped, assignments start afresh."""

from __future__ import annotations

from dataclasses import dataclass

from fraudstream.workers.continuity import DeliveryChaos, OffsetContinuity, once_each


def test_first_batch_continues_from_the_committed_offset() -> None:
    c = OffsetContinuity()
    assert c.plan(0, [10, 11, 12], committed=10).missing == []
    plan = c.plan(1, [15, 16], committed=10)
    assert plan.missing == [(10, 15)] and not plan.redelivered


def test_unknown_committed_offset_accepts_any_start() -> None:
    plan = OffsetContinuity().plan(0, [500, 501], committed=None)
    assert plan.missing == [] and not plan.redelivered


def test_gaps_inside_a_batch_and_between_batches() -> None:
    c = OffsetContinuity()
    assert c.plan(0, [3, 0, 1, 7], committed=0).missing == [(2, 3), (4, 7)]
    c.processed(0, 7)
    assert c.plan(0, [9, 10], committed=0).missing == [(8, 9)]


def test_records_already_processed_are_redelivered_not_gaps() -> None:
    c = OffsetContinuity()
    c.processed(2, 99)
    plan = c.plan(2, [95, 96, 100, 100, 101], committed=50)
    assert plan.redelivered == {95, 96} and plan.missing == []


def test_below_the_committed_offset_counts_as_redelivered() -> None:
    plan = OffsetContinuity().plan(0, [8, 9, 10], committed=10)
    assert plan.redelivered == {8, 9} and plan.missing == []


def test_reset_forgets_progress_and_processed_never_goes_back() -> None:
    c = OffsetContinuity()
    c.processed(0, 50)
    c.processed(0, 20)
    assert c.plan(0, [51], committed=0).missing == []
    c.reset()
    assert c.plan(0, [51], committed=40).missing == [(40, 51)]


def test_once_each_keeps_the_first_record_of_each_offset() -> None:
    @dataclass
    class Rec:
        partition: int
        offset: int
        tag: str

    records = [Rec(0, 1, "a"), Rec(1, 1, "b"), Rec(0, 1, "c"), Rec(0, 2, "d"), Rec(1, 1, "e")]
    kept, repeated = once_each(records)
    assert [r.tag for r in kept] == ["a", "b", "d"] and repeated == 2


def test_delivery_chaos_withholds_then_repeats() -> None:
    chaos = DeliveryChaos()
    chaos.withhold, chaos.repeat = 3, 0
    assert chaos.apply([1, 2]) == [] and chaos.apply([3, 4, 5]) == [4, 5]
    chaos.repeat = 1
    assert chaos.apply([6]) == [5, 6]
    assert chaos.apply([7]) == [7]
