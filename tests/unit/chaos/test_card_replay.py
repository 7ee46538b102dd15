"""The chaos runs' card check: the worker's card table against a replay of what it scored."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from fraudstream.chaos.card_replay import compare, replay
from fraudstream.settings import Settings
from tests.unit.workers.test_processor import Harness, tx


def scored_run() -> tuple[Harness, dict[tuple[int, int], bytes], dict[tuple[int, int], int],
                          dict[str, str]]:
    """A worker's scoring step over two cards, one late record, one duplicate and one bad
    record; returns the harness and what a ledger would hold (values, scored positions,
    decisions)."""
    h = Harness()
    bodies: list[bytes | dict[str, Any]] = [
        tx(1, 20.0), tx(2, 900.0), tx(3, 15.0, "C2"), b"{broken", tx(1, 20.0),
        {**tx(4, 40.0), "timestamp": "2026-11-01T09:00:00Z"}, tx(5, 70.0, "C2")]
    records = [h.record(b) for b in bodies]
    h.run(records[:4])
    h.run(records[4:])
    values = {(r.partition, r.offset): r.value or b"" for r in records}
    scores = h.by_topic("scores")
    scored = {(s["partition"], s["offset"]): 1 for s in scores}
    decisions = {s["transaction_id"]: s["decision"] for s in scores}
    return h, values, scored, decisions


def table_of(h: Harness) -> dict[str, list | None]:
    return {key.decode(): orjson.loads(orjson.dumps(value))
            for key, value in h.cards.data.items()}


def test_the_card_table_the_worker_wrote_equals_the_replay() -> None:
    h, values, scored, decisions = scored_run()
    check = compare(replay(values, scored, decisions, Settings()), table_of(h), Settings())
    assert (check.cards, check.equal, check.mismatched, check.passed) == (2, 2, 0, True)


def test_a_card_missing_a_transaction_or_written_back_is_a_mismatch() -> None:
    h, values, scored, decisions = scored_run()
    first_only = dict(list(scored.items())[:1])  # the table as an older writer left it
    older = {**table_of(h)}
    older["C1"] = orjson.loads(orjson.dumps(
        replay(values, first_only, decisions, Settings())["C1"].to_wire()))
    check = compare(replay(values, scored, decisions, Settings()), older, Settings())
    assert (check.mismatched, check.passed) == (1, False)
    assert check.examples[0].startswith("C1: feature state")
    del older["C1"]
    assert "not in the card table" in compare(
        replay(values, scored, decisions, Settings()), older, Settings()).examples[0]


def test_a_decision_that_differs_from_the_published_one_is_a_mismatch() -> None:
    h, values, scored, decisions = scored_run()
    flipped = {tid: ("decline" if d != "decline" else "approve") for tid, d in decisions.items()}
    check = compare(replay(values, scored, flipped, Settings()), table_of(h), Settings())
    assert check.mismatched == 2 and "decisions" in check.examples[0]


def test_an_expired_card_is_counted_apart() -> None:
    h, values, scored, decisions = scored_run()
    table = {**table_of(h), "C2": None}
    check = compare(replay(values, scored, decisions, Settings()), table, Settings())
    assert (check.equal, check.expired, check.mismatched) == (1, 1, 0)


def test_a_busy_card_is_replayed_with_the_decisions_the_workers_keep() -> None:
    # 60 transactions of one card over 7.5 days: the workers keep every decision until its
    # label is due (label delay + a day), far beyond the 2-day duplicate window; a replay
    # pruned to that window would call the card table wrong.
    h = Harness()
    records = []
    for i in range(60):
        at = 1_799_000_000 - 9 * 86_400 + i * 3 * 3_600
        stamp = np.datetime_as_string(np.datetime64(at, "s")) + "Z"
        records.append(h.record({**tx(i), "timestamp": stamp}))
        h.run(records[-1:])
    values = {(r.partition, r.offset): r.value or b"" for r in records}
    scores = h.by_topic("scores")
    scored = {(s["partition"], s["offset"]): 1 for s in scores}
    decisions = {s["transaction_id"]: s["decision"] for s in scores}
    check = compare(replay(values, scored, decisions, Settings()), table_of(h), Settings())
    assert (check.cards, check.equal, check.mismatched) == (1, 1, 0), check.examples
