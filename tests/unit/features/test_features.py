import math

import numpy as np
import orjson
import pytest

from fraudstream.features import (
    FEATURE_NAMES,
    CardState,
    MerchantState,
    build_feature_matrix,
    compute_features,
)
from fraudstream.features.definitions import DAY_S, context_features
from fraudstream.features.merchant import LEVEL_CAP, LEVEL_WIDTHS_S, MerchantStateFormatError
from fraudstream.features.windows import MERCHANT_WINDOWS_DAYS

T0 = 1_522_540_800  # 2018-04-01T00:00:00Z, a Sunday


def test_context_features_weekend_and_night() -> None:
    amount, log_amount, weekend, night = context_features(T0 + 3600, 10.0)
    assert (amount, weekend, night) == (10.0, 1.0, 1.0)
    assert math.isclose(log_amount, math.log1p(10.0))
    assert context_features(T0 + DAY_S + 12 * 3600, 10.0)[2:] == [0.0, 0.0]  # Monday noon


def test_card_windows_include_the_transaction_and_drop_old_history() -> None:
    card = CardState()
    card.observe(T0, 10.0)
    card.observe(T0 + 3600, 30.0)
    f = dict(zip(FEATURE_NAMES[4:13], card.observe(T0 + 2 * DAY_S, 50.0), strict=True))
    assert f["card_nb_tx_1d"] == 1.0 and f["card_avg_amount_1d"] == 50.0
    assert f["card_nb_tx_7d"] == 3.0 and f["card_avg_amount_7d"] == 30.0
    assert math.isclose(f["card_amount_to_avg_30d"], 50.0 / 20.0)
    assert math.isclose(f["card_log_seconds_since_last"], math.log1p(2 * DAY_S - 3600))
    assert f["card_amount_to_avg_7_30d"] == 1.0  # no history 7 days or more back
    week = dict(zip(FEATURE_NAMES[4:13], card.observe(T0 + 9 * DAY_S, 40.0), strict=True))
    # Day 9: days 0-2 hold 10, 30 and 50 (average 30); the 30-day average also holds nothing
    # else, so both ratios are 40 / 30.
    assert week["card_amount_to_avg_7_30d"] == week["card_amount_to_avg_30d"] == 40.0 / 30.0
    late = dict(zip(FEATURE_NAMES[4:13], card.observe(T0 + 10 * DAY_S, 120.0), strict=True))
    # Day 10: days 0-3 hold 10, 30 and 50 (day 9's 40 is inside the last week); the 30 days
    # hold all four.
    assert late["card_amount_to_avg_7_30d"] == 120.0 / 30.0
    assert late["card_amount_to_avg_30d"] == 120.0 / 32.5
    later = dict(zip(FEATURE_NAMES[4:13], card.observe(T0 + 40 * DAY_S, 5.0), strict=True))
    assert later["card_nb_tx_30d"] == 1.0


def test_state_round_trips_through_the_wire_form() -> None:
    card, merchant = CardState(), MerchantState()
    for i in range(20):
        compute_features(T0 + i * 5000, float(i), card, merchant, 7)
        merchant.observe_label(T0 + i * 5000, i % 3 == 0)

    card2 = CardState.from_wire(orjson.loads(orjson.dumps(card.to_wire())))
    merchant2 = MerchantState.from_wire(orjson.loads(orjson.dumps(merchant.to_wire())))
    assert card2 == card and merchant2 == merchant
    assert card2.observe(T0 + 10**6, 3.0) == card.observe(T0 + 10**6, 3.0)


def test_feature_rows_of_a_hand_made_sequence() -> None:
    """Eight transactions whose feature rows are worked out by hand from the definitions'
    docstrings (card: 1 day = the exact last 24 h, 7 and 30 days = calendar days ending on the
    transaction's day, all including it; the habit before the last week = days 7 to 29 before
    the transaction's day; merchant: labels of transactions at least the delay
    old, exact seconds), not by running the code."""
    assert FEATURE_NAMES == (
        "amount", "log_amount", "is_weekend", "is_night",
        "card_nb_tx_1d", "card_avg_amount_1d", "card_nb_tx_7d", "card_avg_amount_7d",
        "card_nb_tx_30d", "card_avg_amount_30d", "card_amount_to_avg_30d",
        "card_amount_to_avg_7_30d", "card_log_seconds_since_last",
        "merchant_nb_tx_1d", "merchant_risk_1d", "merchant_nb_tx_7d", "merchant_risk_7d",
        "merchant_nb_tx_30d", "merchant_risk_30d", "merchant_fraud_days_30d",
        "merchant_days_since_fraud")
    h = 3600
    # Day 0 = 2018-04-01, a Sunday: days 0 and 7 are weekend days, 1, 2, 5 and 9 are not.
    rows = [  # (time, card, merchant, amount, is_fraud)
        (T0 + 10 * h, "C1", "M1", 20.0, 0),          # r0: Sun 10:00
        (T0 + 22 * h, "C2", "M1", 50.0, 1),          # r1: Sun 22:00, fraud at M1
        (T0 + DAY_S + 2 * h, "C1", "M2", 40.0, 0),   # r2: Mon 02:00 (night)
        (T0 + 2 * DAY_S + 12 * h, "C2", "M2", 30.0, 1),  # r3: Tue 12:00, fraud at M2
        (T0 + 5 * DAY_S + 15 * h, "C1", "M1", 10.0, 0),  # r4: Fri 15:00
        (T0 + 7 * DAY_S + 23 * h, "C1", "M1", 60.0, 0),  # r5: Sun 23:00, day 7
        (T0 + 9 * DAY_S + 11 * h, "C2", "M2", 25.0, 0),  # r6: Tue 11:00, day 9
        (T0 + 9 * DAY_S + 13 * h, "C1", "M2", 80.0, 0),  # r7: Tue 13:00, day 9
    ]
    no_previous = 30 * DAY_S  # a card's first transaction: 30 days since "the last" one
    no_labels = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 31.0]  # no label known: 31 days since fraud
    expected = [
        # r0: C1's first transaction, every card window holds it alone; ratio 1 without history.
        [20.0, math.log1p(20.0), 1.0, 0.0, 1.0, 20.0, 1.0, 20.0, 1.0, 20.0, 1.0, 1.0,
         math.log1p(no_previous), *no_labels],
        # r1: C2's first transaction. M1's label of r0 is 12 h old, not 7 days.
        [50.0, math.log1p(50.0), 1.0, 0.0, 1.0, 50.0, 1.0, 50.0, 1.0, 50.0, 1.0, 1.0,
         math.log1p(no_previous), *no_labels],
        # r2: C1, r0 16 h earlier is inside the last 24 h (and on day 0, inside the calendar
        # windows): 2 transactions, average (20 + 40) / 2 = 30 in each window. History before
        # it: r0 alone, 40 / 20 = 2. Nothing 7 days or more before day 1: 1. Since r0:
        # 24 h + 2 h - 10 h = 16 h = 57,600 s.
        [40.0, math.log1p(40.0), 0.0, 1.0, 2.0, 30.0, 2.0, 30.0, 2.0, 30.0, 2.0, 1.0,
         math.log1p(57_600), *no_labels],
        # r3: C2, r1 (day 0, 22:00) is 38 h earlier: out of the last 24 h, inside the 7 and
        # 30 calendar days: 2 transactions, (50 + 30) / 2 = 40. Ratio 30 / 50 = 0.6.
        # Since r1: 38 h = 136,800 s.
        [30.0, math.log1p(30.0), 0.0, 0.0, 1.0, 30.0, 2.0, 40.0, 2.0, 40.0, 0.6, 1.0,
         math.log1p(136_800), *no_labels],
        # r4: C1 on day 5: alone in the last 24 h; days 0-5 hold r0, r2, r4: 3 transactions,
        # (20 + 40 + 10) / 3 = 70 / 3. Ratio 10 / ((20 + 40) / 2) = 1 / 3. Since r2 (day 1,
        # 02:00): 4 days 13 h = 392,400 s. M1's labels (r0, r1) are under 6 days old.
        [10.0, math.log1p(10.0), 0.0, 0.0, 1.0, 10.0, 3.0, 70 / 3, 3.0, 70 / 3, 1 / 3, 1.0,
         math.log1p(392_400), *no_labels],
        # r5: C1 on day 7: alone in the last 24 h; the 7 calendar days are days 1-7: r2, r4, r5,
        # (40 + 10 + 60) / 3 = 110 / 3; the 30 days hold all four: 130 / 4 = 32.5. Ratio
        # 60 / (70 / 3) = 18 / 7. Days 7 to 29 before day 7 are day 0 and earlier: r0 alone,
        # 60 / 20 = 3. Since r4: 2 days 8 h = 201,600 s.
        # M1: t - delay = day 0, 23:00. r0 (10:00, genuine) and r1 (22:00, fraud) are known,
        # r4 (day 5) is not: 2 labels in every window, risk 1 / 2; r1 lies 1 h before
        # t - delay: one fraud day (slot 0), 1 / 24 day since the fraud.
        [60.0, math.log1p(60.0), 1.0, 0.0, 1.0, 60.0, 3.0, 110 / 3, 4.0, 32.5, 18 / 7, 3.0,
         math.log1p(201_600), 2.0, 0.5, 2.0, 0.5, 2.0, 0.5, 1.0, 1 / 24],
        # r6: C2 on day 9: alone in the last 24 h and in days 3-9 (r3 on day 2 is just out);
        # 30 days: r1, r3, r6, (50 + 30 + 25) / 3 = 35. Ratio 25 / ((50 + 30) / 2) = 0.625.
        # Days 0-2 (7 or more before day 9): r1 and r3, 25 / 40 = 0.625 again.
        # Since r3: 7 days - 1 h = 601,200 s.
        # M2: t - delay = day 2, 11:00. r2 (day 1, 02:00, genuine) is known, 33 h before it:
        # out of the 1-day window, in the 7- and 30-day ones. The fraud r3 (day 2, 12:00) is
        # 1 h short of the delay: unknown, so no fraud day and 31.
        [25.0, math.log1p(25.0), 0.0, 0.0, 1.0, 25.0, 1.0, 25.0, 3.0, 35.0, 0.625, 0.625,
         math.log1p(601_200), 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 31.0],
        # r7: C1 on day 9: alone in the last 24 h (r5 is 38 h earlier); days 3-9: r4, r5, r7,
        # (10 + 60 + 80) / 3 = 50; 30 days: all five, 210 / 5 = 42. Ratio
        # 80 / (130 / 4) = 32 / 13. Days 0-2: r0 and r2, 80 / 30 = 8 / 3 (r4 on day 5 is
        # inside the last week). Since r5: 2 days - 10 h = 136,800 s.
        # M2: t - delay = day 2, 13:00: now r3 is known, 1 h old: 1-day window r3 alone
        # (risk 1); 7 and 30 days r2 and r3 (risk 1 / 2); one fraud day, 1 / 24 day since.
        [80.0, math.log1p(80.0), 0.0, 0.0, 1.0, 80.0, 3.0, 50.0, 5.0, 42.0, 32 / 13, 8 / 3,
         math.log1p(136_800), 1.0, 1.0, 2.0, 0.5, 2.0, 0.5, 1.0, 1 / 24],
    ]
    matrix = build_feature_matrix([t for t, *_ in rows], [c for _t, c, *_ in rows],
                                  [m for _t, _c, m, *_ in rows], [a for *_, a, _f in rows],
                                  [f for *_, f in rows], 7)
    assert matrix.shape == (8, len(FEATURE_NAMES))
    for i, row in enumerate(expected):
        assert matrix[i].tolist() == pytest.approx(row, rel=1e-12, abs=0), f"r{i}"


# --- Merchant features: labels of transactions at least the delay old, in exact seconds. ---

DELAY_S = 7 * DAY_S
NO_LABELS = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 31.0]


def merchant_with(labels: list[tuple[int, bool]]) -> MerchantState:
    merchant = MerchantState()
    for ts, is_fraud in labels:
        merchant.observe_label(ts, is_fraud)
    return merchant


def test_a_fraud_at_235959_is_invisible_at_midnight_seven_days_later() -> None:
    fraud_at = T0 + DAY_S - 1  # 23:59:59 on day 0
    merchant = merchant_with([(fraud_at, True)])
    # 00:00 on day 7 is 6 days and 1 second after the fraud: not yet known.
    assert merchant.features(T0 + 7 * DAY_S, DELAY_S) == NO_LABELS
    assert merchant.features(fraud_at + DELAY_S - 1, DELAY_S) == NO_LABELS
    # 23:59:59 on day 7: exactly 7 days old, known; newest fraud 0 days before t - delay.
    known = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert merchant.features(fraud_at + DELAY_S, DELAY_S) == known
    # The whole vector path takes the delay in days and converts it to the same seconds.
    assert compute_features(T0 + 7 * DAY_S, 1.0, CardState(), merchant, 7)[-8:] == NO_LABELS
    assert compute_features(fraud_at + DELAY_S, 1.0, CardState(), merchant, 7)[-8:] == known


def test_window_edges_are_exact_for_1_7_and_30_days() -> None:
    hi = T0 + 40 * DAY_S + 12_345  # t - delay, not a midnight
    merchant = merchant_with([
        (hi - 30 * DAY_S, False),     # just outside 30 d
        (hi - 30 * DAY_S + 1, True),  # just inside 30 d (slot 29)
        (hi - 7 * DAY_S, False),      # just outside 7 d
        (hi - 7 * DAY_S + 1, True),   # just inside 7 d (slot 6)
        (hi - DAY_S, False),          # just outside 1 d
        (hi - DAY_S + 1, False),      # just inside 1 d
        (hi + 1, True),               # one second too young
    ])
    nb1, risk1, nb7, risk7, nb30, risk30, fraud_days, since = merchant.features(
        hi + DELAY_S, DELAY_S)
    assert (nb1, risk1) == (1.0, 0.0)
    assert (nb7, risk7) == (3.0, 1 / 3)
    assert (nb30, risk30) == (5.0, 2 / 5)
    assert fraud_days == 2.0
    assert since == (7 * DAY_S - 1) / DAY_S
    # One second later every edge moves: the young fraud is in, each "just inside" is out
    # (1 d: the young fraud; 7 d: it and both 1-day-old labels; 30 d: all but the two oldest).
    assert merchant.features(hi + 1 + DELAY_S, DELAY_S) == [
        1.0, 1.0, 3.0, 1 / 3, 5.0, 2 / 5, 2.0, 0.0]


def test_fraud_days_are_day_slots_counted_back_from_t_minus_delay() -> None:
    hi = T0 + 50 * DAY_S + 7 * 3600
    merchant = merchant_with([
        (hi - DAY_S // 2, True), (hi - DAY_S // 2 - 600, True),  # slot 0, twice
        (hi - 2 * DAY_S - 3600, True),                             # slot 2
        (hi - 3 * DAY_S - 3600, False),                            # genuine: no fraud day
        (hi - 31 * DAY_S, True),                                   # outside the 30 days
    ])
    *_, fraud_days, since = merchant.features(hi + DELAY_S, DELAY_S)
    assert (fraud_days, since) == (2.0, 0.5)


def test_merchant_features_do_not_depend_on_label_arrival_order() -> None:
    rng = np.random.default_rng(7)
    labels = [(int(t), bool(f)) for t, f in zip(rng.integers(T0, T0 + 35 * DAY_S, 3000),
                                                  rng.random(3000) < 0.1, strict=True)]
    in_order = merchant_with(sorted(labels))
    shuffled = merchant_with([labels[i] for i in rng.permutation(len(labels))])
    assert shuffled == in_order
    for t in range(T0 + 8 * DAY_S, T0 + 43 * DAY_S, 37_003):
        assert shuffled.features(t, DELAY_S) == in_order.features(t, DELAY_S)


def counted_by_definition(ts: np.ndarray, fraud: np.ndarray, lower: list[int], lo: int,
                          hi: int) -> tuple[int, int]:
    """(count, frauds) the module docstring's rule gives: a label lives in the finest level
    whose lower boundary it reaches, and its bucket counts only if it lies inside (lo, hi]."""
    width = np.where(ts >= lower[0], 1, np.where(ts >= lower[1], 60, 3600))
    start = ts // width * width
    inside = (start > lo) & (start + width - 1 <= hi)
    return int(inside.sum()), int(fraud[inside].sum())


def test_a_hot_merchant_stays_small_and_never_leaks() -> None:
    # 40 days of one label a minute, then 20 minutes of 500 labels a second (a fraud in 50).
    start = T0 + 10 * 3600 + 17
    history = [(start + 60 * i, False) for i in range(40 * 1440)]
    burst_start = history[-1][0] + 60
    burst = [(burst_start + s, k == 0 and s % 10 == 0) for s in range(1200) for k in range(50)]
    burst = burst * 10  # 500 a second
    labels = history + sorted(burst)
    merchant = merchant_with(labels)
    newest = labels[-1][0]

    wire = orjson.dumps(merchant.to_wire())
    assert len(wire) < 40 * 1024, len(wire)
    assert all(len(tier) <= LEVEL_CAP for tier in merchant.levels[:2])
    assert len(merchant.levels[2]) <= 40 * 24 + 1
    assert MerchantState.from_wire(orjson.loads(wire)) == merchant
    # The newest minute (and more) stays exact; the far past is in hours.
    lower = merchant.lower
    assert lower[0] <= newest - 60 and lower[1] > newest - DAY_S

    # With t - delay at the newest label, nothing is younger than the delay: every label of the
    # last day counts except those sharing the far edge's hour bucket.
    lo = newest - DAY_S
    in_window = [(ts, f) for ts, f in labels if lo < ts <= newest]
    far_hour = [ts for ts, _f in in_window if ts <= lo // 3600 * 3600 + 3599]
    nb1, risk1, *_ = merchant.features(newest + DELAY_S, DELAY_S)
    assert nb1 == len(in_window) - len(far_hour) == len(burst) + 1440 - 60
    assert risk1 == 1200 * 10 // 10 / nb1

    # Labels that arrived early (t - delay inside the burst, inside minute and hour buckets):
    # never counted, and every window follows the documented rule.
    ts = np.array([t for t, _f in labels])
    fraud = np.array([f for _t, f in labels])
    for hi in (burst_start + 30, burst_start + 75, burst_start + 600, newest - 1,
               lower[1] + 1800, lower[1] - 1):
        got = merchant.features(hi + DELAY_S, DELAY_S)
        for k, w in enumerate(MERCHANT_WINDOWS_DAYS):
            n, f = counted_by_definition(ts, fraud, lower, hi - w * DAY_S, hi)
            assert got[2 * k] == n <= ((ts > hi - w * DAY_S) & (ts <= hi)).sum()
            assert got[2 * k + 1] == (f / n if n else 0.0)


def test_legacy_daily_state_is_read_without_leaking() -> None:
    day0 = T0 // DAY_S
    legacy = [[day0, 3, 1], [day0 + 2, 2, 0]]  # the daily (day, count, frauds) list
    merchant = MerchantState.from_wire(legacy)
    # Day 0's labels count once the whole day is 7 days old: not at 00:00 on day 7.
    assert merchant.features(T0 + 7 * DAY_S, DELAY_S) == NO_LABELS
    assert merchant.features(T0 + 8 * DAY_S - 1, DELAY_S) == [
        3.0, 1 / 3, 3.0, 1 / 3, 3.0, 1 / 3, 1.0, 0.0]
    # Written back in the current form, and read again the same.
    wire = orjson.loads(orjson.dumps(merchant.to_wire()))
    assert wire["v"] == 2 and MerchantState.from_wire(wire) == merchant


@pytest.mark.parametrize("wire", [{"v": 3, "b": 0, "x": [], "h": []}, "garbage", [[1, 2]],
                                  {"v": 2, "b": 0, "x": [1, 2], "h": []},
                                  {"v": 2, "b": 0, "x": [5, 1, 0, -1, 1, 0], "h": []},
                                  {"v": 2, "b": [0, 0], "l": [[5, 1, 0, -1, 1, 0], [], []]},
                                  {"v": 2, "b": [0, 0], "l": [[5, 1, 0, 0, 1, 0], [], []]},
                                  {"v": 2, "b": [0, 0], "l": [[1, 2], [], []]},
                                  {"v": 2, "b": [0, 0], "l": [["5", 1, 0], [], []]},
                                  {"v": 2, "b": [0, 0], "l": [[5.5, 1, 0], [], []]},
                                  {"v": 2, "b": [0, 0], "l": [[5, True, 0], [], []]},
                                  {"v": 2, "b": [0, 0], "l": [[], []]},
                                  {"v": 2, "b": [0, 0], "l": [[], [], "x"]},
                                  {"v": 2, "b": [0, 0], "l": "xyz"}])
def test_an_unknown_merchant_state_is_refused_clearly(wire: object) -> None:
    with pytest.raises(MerchantStateFormatError, match="merchant state"):
        MerchantState.from_wire(wire)


def _busy_merchant() -> MerchantState:
    """Labels at more distinct seconds than a level keeps: minute buckets in use."""
    merchant = MerchantState()
    for i in range(LEVEL_CAP + 300):
        merchant.observe_label(T0 + i * 7, i % 11 == 0)
    merchant.observe_label(T0 + 20 * DAY_S, True)
    assert len(merchant.levels[1]) > 0
    return merchant


def test_the_wire_form_is_each_levels_entries_delta_coded() -> None:
    merchant = _busy_merchant()
    wire = merchant.to_wire()
    for flat, tier, width in zip(wire["l"], merchant.levels, LEVEL_WIDTHS_S, strict=True):
        expected: list[int] = []
        previous = 0
        for end, n, f in tier.entries():
            expected += [end // width - previous, n, f]
            previous = end // width
        assert flat == expected
    decoded = MerchantState.from_wire(orjson.loads(orjson.dumps(wire)))
    assert [t.entries() for t in decoded.levels] == [t.entries() for t in merchant.levels]
    at = T0 + 30 * DAY_S
    assert decoded.features(at, DELAY_S) == merchant.features(at, DELAY_S)


def test_a_copy_of_a_merchant_state_is_independent() -> None:
    merchant = _busy_merchant()
    before = merchant.to_wire()
    copy = merchant.copy()
    assert copy == merchant
    copy.observe_label(T0 + 3, True)
    copy.observe_label(T0 + 21 * DAY_S, False)
    assert merchant.to_wire() == before and copy != merchant


def test_offline_labels_reach_the_merchant_exactly_the_delay_later() -> None:
    # One merchant: a fraud at 23:59:59 on day 0, then transactions at 00:00 and 23:59:59 on
    # day 7 (delay 7 days). Only the last one knows the fraud.
    ts = np.array([T0 + DAY_S - 1, T0 + 7 * DAY_S, T0 + 8 * DAY_S - 1])
    matrix = build_feature_matrix(ts, ["C1", "C2", "C3"], ["M1"] * 3, [1.0] * 3, [1, 0, 0], 7)
    merchant = matrix[:, len(FEATURE_NAMES) - 8:]
    assert merchant[0].tolist() == NO_LABELS
    assert merchant[1].tolist() == NO_LABELS
    assert merchant[2].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
