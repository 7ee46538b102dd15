"""The card's 24-hour window: exact for ordinary cards, bounded and O(1) for a busy one."""

from __future__ import annotations

import random
import time

import orjson
import pytest

from fraudstream.features import FEATURE_NAMES, CardState
from fraudstream.features.card import BUCKET_SPAN_S, EXACT_CAP
from fraudstream.features.windows import DAY_S

T0 = 1_522_540_800  # 2018-04-01T00:00:00Z
N1 = FEATURE_NAMES.index("card_nb_tx_1d") - 4
AVG1 = N1 + 1


def one_day(card: CardState, ts: int, amount: float) -> tuple[float, float]:
    """(count, sum) of the 1-day window ``observe`` reports for this transaction."""
    out = card.observe(ts, amount)
    return out[N1], out[N1] * out[AVG1]


def test_ordinary_cards_keep_the_exact_24_hour_window() -> None:
    rng = random.Random(7)
    for _card in range(20):
        card, seen = CardState(), []
        ts = T0
        for _ in range(300):  # up to ~100 a day: below the exact cap
            ts += rng.randint(60, 2 * 3600)
            amount = round(rng.uniform(1, 500), 2)
            seen.append((ts, amount))
            window = [a for t, a in seen if ts - DAY_S < t <= ts]
            expected_sum = 0.0
            for a in window:
                expected_sum += a
            out = card.observe(ts, amount)
            assert out[N1] == float(len(window))
            assert out[AVG1] == expected_sum / len(window)


def test_a_busy_card_stays_small_and_cheap() -> None:
    card = CardState()
    n = 56_000
    step = DAY_S / (n + 2_000)
    for i in range(n):
        card.observe(T0 + int(i * step), 10.0)
    assert len(orjson.dumps(card.to_wire())) < 8_000  # a list of every transaction: ~1 MB
    began = time.perf_counter()
    for i in range(n, n + 2_000):
        card.observe(T0 + int(i * step), 10.0)
    # A scan of the 24-hour list costs milliseconds per transaction at this size.
    assert time.perf_counter() - began < 0.5
    assert len(card.recent) == EXACT_CAP
    assert len(card.buckets) <= DAY_S // BUCKET_SPAN_S + 2


def test_a_busy_cards_window_is_never_understated() -> None:
    rng = random.Random(3)
    card, seen = CardState(), []
    ts = T0
    for _ in range(3_000):
        ts += rng.randint(0, 90)
        seen.append(ts)
        count, total = one_day(card, ts, 2.0)
        exact = sum(1 for t in seen if ts - DAY_S < t <= ts)
        # At most one bucket's worth of transactions (those of its span) is over-counted.
        one_bucket = sum(1 for t in seen if ts - DAY_S - BUCKET_SPAN_S < t <= ts - DAY_S)
        assert exact <= count <= exact + one_bucket
        assert abs(total - 2.0 * count) < 1e-6


def test_a_late_transaction_counts_its_own_window_and_evicts_nothing() -> None:
    card = CardState()
    card.observe(T0, 10.0)
    card.observe(T0 + 10 * 3600, 20.0)
    card.observe(T0 + 20 * 3600, 30.0)
    # Late by 15 hours: its window (T0 + 5h - 24h, T0 + 5h] holds T0 and itself.
    assert one_day(card, T0 + 5 * 3600, 40.0) == (2.0, 50.0)
    # Days late: it counts alone and removes nothing.
    assert one_day(card, T0 - 10 * DAY_S, 5.0) == (1.0, 5.0)
    # T0 + 25h: T0 has left the window; 10h, 20h and the late 5h one are in it, and this one.
    assert one_day(card, T0 + 25 * 3600, 1.0) == (4.0, 91.0)


def test_a_late_transaction_of_a_busy_card_lands_in_its_bucket() -> None:
    card = CardState()
    for i in range(EXACT_CAP + 200):
        card.observe(T0 + i * 60, 1.0)
    assert card.buckets
    before = card._count
    count, _total = one_day(card, T0 + 30, 1.0)  # older than every exact entry
    assert card._count == before + 1
    assert count >= 2  # the bucket holding T0 counts, and this one
    assert card.to_wire() == CardState.from_wire(card.to_wire()).to_wire()


def test_the_list_form_of_older_records_still_loads_and_is_capped() -> None:
    recent = [[T0 + i * 100, 1.5] for i in range(500)]
    card = CardState.from_wire([T0 + 499 * 100, recent, [[T0 // DAY_S, 500, 750.0]]])
    assert len(card.recent) == EXACT_CAP
    # Everything is inside the window of the next transaction: counted exactly.
    assert one_day(card, T0 + 500 * 100, 1.5) == (501.0, 751.5)


def test_state_with_buckets_round_trips() -> None:
    card = CardState()
    for i in range(1_000):
        card.observe(T0 + i * 50, float(i % 13))
    again = CardState.from_wire(orjson.loads(orjson.dumps(card.to_wire())))
    assert again == card
    assert again.observe(T0 + 60_000, 3.0) == card.observe(T0 + 60_000, 3.0)


def test_a_card_record_fits_every_output_limit_whatever_its_ids() -> None:
    from fraudstream.workers.card_record import CardRecord, Decision

    record = CardRecord()
    for i in range(5_000):
        tx_id = f"{i:06d}" + "\U0001f4b3" * 122  # 128 characters, 4 bytes each in UTF-8
        record.state.observe(T0 + i * 10, 1.0)
        record.remember(Decision(tx_id, T0 + i * 10, 0, i, 0.5, "review", "v" * 64))
    raw = orjson.dumps(record.to_wire())
    assert len(raw) <= 65_536 - 1_024  # 140 KB with 256 such decisions
    kept = CardRecord.from_wire(orjson.loads(raw))
    assert kept.find(f"{4_999:06d}" + "\U0001f4b3" * 122) is not None  # the newest stay
    assert len(kept.decisions) >= 32  # at least DEDUP_MIN_KEPT's worth of these ids


def test_a_decision_is_read_off_the_wire_form_as_the_record_finds_it() -> None:
    from fraudstream.workers.card_record import CardRecord, Decision

    record = CardRecord()
    for i in range(40):  # beyond SCAN_MAX: the record itself looks up through a dict
        record.state.observe(T0 + i * 10, 1.0)
        record.remember(Decision(f"t{i}", T0 + i * 10, 3, i, -1.0, "", ""))
        record.settle(f"t{i}", i / 100, "approve", "v1")
    stored = orjson.dumps(record.to_wire())
    wire = orjson.loads(stored)
    assert CardRecord.decision_in(stored, "t7") == Decision("t7", T0 + 70, 3, 7, 0.07,
                                                            "approve", "v1")
    for tx_id in ("t0", "t1", "t39", "t40", "t3", ""):
        assert CardRecord.decision_in(stored, tx_id) == CardRecord.from_wire(wire).find(tx_id)
    assert CardRecord.decision_in(None, "t7") is None and CardRecord.decision_in(b"", "t7") is None


def test_a_decision_is_read_off_the_stored_json_whatever_its_id_holds() -> None:
    import json

    from fraudstream.workers.card_record import CardRecord, Decision

    ids = ["plain", 'qu"ote', "back\\slash", "\U0001f4b3 card", "x[", ",1,2,3,0.5,", "tx-1",
           "tx-1 again"]
    record = CardRecord()
    for i, tx_id in enumerate(ids):
        record.state.observe(T0 + i, 1.0)
        record.remember(Decision(tx_id, T0 + i, 0, i, -1.0, "", ""))
        record.settle(tx_id, i / 10, "review", "v2")
    # The same id decided again later (a replay keeps the newest): the newest is found.
    record.remember(Decision("tx-1", T0 + 99, 0, 99, -1.0, "", ""))
    record.settle("tx-1", 0.99, "decline", "v3")
    for stored in (orjson.dumps(record.to_wire()),
                   json.dumps(record.to_wire()).encode()):  # escapes: another encoder
        for tx_id in [*ids, "absent", "tx"]:
            assert CardRecord.decision_in(stored, tx_id) == CardRecord.from_wire(
                orjson.loads(stored)).find(tx_id), (stored[:20], tx_id)
    assert CardRecord.decision_in(orjson.dumps(record.to_wire()), "tx-1") == Decision(
        "tx-1", T0 + 99, 0, 99, 0.99, "decline", "v3")


@pytest.mark.parametrize("observed", [True, False])  # False: no state, the newest decision
def test_a_record_keeps_its_last_decisions_and_those_inside_the_window(observed: bool) -> None:
    from fraudstream.workers.card_record import DEDUP_MIN_KEPT, CardRecord, Decision

    def record(n: int) -> CardRecord:
        r = CardRecord()
        for i in range(n):  # the first one ten days before the others
            ts = T0 + (0 if i == 0 else 10 * DAY_S + i)
            if observed:
                r.state.observe(ts, 1.0)
            r.remember(Decision(f"t{i}", ts, 0, i, 0.1, "approve", "v1"))
        return r

    def kept(n: int) -> list[str]:
        decisions = record(n).to_wire(2 * DAY_S)[1]
        assert isinstance(decisions, list)
        return [d[0] for d in decisions]

    # The last DEDUP_MIN_KEPT stay however old; an older one only inside the window.
    assert kept(DEDUP_MIN_KEPT) == [f"t{i}" for i in range(DEDUP_MIN_KEPT)]
    assert kept(DEDUP_MIN_KEPT + 1) == [f"t{i}" for i in range(1, DEDUP_MIN_KEPT + 1)]
