"""Which features drift is measured on, and when the worker's state is warm for them."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.features import FEATURE_NAMES
from fraudstream.features.windows import DAY_S
from fraudstream.monitoring.drift_scope import (
    EXCLUDED_FEATURES,
    lookback_seconds,
    measured_features,
    score_lookback_seconds,
)
from fraudstream.monitoring.drift_warmup import HistoryClock, history_days

NAMES = ["amount", "card_nb_tx_1d", "card_nb_tx_7d", "card_nb_tx_30d", "merchant_nb_tx_1d",
         "merchant_nb_tx_30d"]


def test_lookbacks_follow_each_feature_window() -> None:
    assert lookback_seconds("amount") == 0
    assert lookback_seconds("card_avg_amount_1d") == DAY_S
    assert lookback_seconds("card_nb_tx_7d") == 7 * DAY_S
    assert lookback_seconds("card_nb_tx_30d") == 30 * DAY_S
    assert lookback_seconds("card_log_seconds_since_last") == 30 * DAY_S
    assert lookback_seconds("merchant_risk_1d") == 40 * DAY_S  # widest window + label delay
    assert score_lookback_seconds(FEATURE_NAMES) == 40 * DAY_S


def test_calendar_features_are_left_out_and_every_other_feature_is_measured() -> None:
    measured = measured_features(FEATURE_NAMES)
    assert set(EXCLUDED_FEATURES) == {"is_weekend", "is_night"}
    assert set(FEATURE_NAMES) - set(measured) == {"is_weekend", "is_night"}


def test_history_days_is_the_ratio_of_other_transactions_in_the_wide_and_narrow_windows() -> None:
    # Counts include the row itself: (10-1 + 4-1) / (2-1 + 3-1) = 12 / 3 = 4 days.
    assert history_days(np.array([10.0, 4.0]), np.array([2.0, 3.0]), True) == 4.0
    assert history_days(np.array([1.0, 1.0]), np.array([1.0, 1.0]), True) == 0.0  # cold
    assert history_days(np.array([90.0]), np.array([1.0]), False) == 30.0  # capped


def rows(n: int, nb_1d: float, nb_30d: float, m_1d: float = 0.0, m_30d: float = 0.0
         ) -> np.ndarray:
    out = np.zeros((n, len(NAMES)))
    out[:, 1], out[:, 3], out[:, 4], out[:, 5] = nb_1d, nb_30d, m_1d, m_30d
    return out


def test_a_cold_stream_warms_each_feature_when_its_event_time_span_reaches_its_window() -> None:
    clock = HistoryClock(NAMES, probe_rows=10)
    t0 = 1_700_000_000
    clock.observe(rows(10, 1, 1), np.full(10, t0))
    assert clock.credit_s == {"card": 0.0, "merchant": 0.0}
    assert clock.warm("amount") and not clock.warm("card_nb_tx_1d")
    assert clock.missing_s("card_nb_tx_1d") == DAY_S
    clock.observe(rows(5, 2, 2), np.array([t0 + DAY_S - 1] * 5))
    assert not clock.warm("card_nb_tx_1d") and clock.missing_s("card_nb_tx_1d") == 1
    clock.observe(rows(5, 2, 2), np.array([t0 + DAY_S] * 5))
    assert clock.warm("card_nb_tx_1d") and not clock.warm("card_nb_tx_7d")
    clock.observe(rows(5, 2, 9), np.array([t0 + 30 * DAY_S] * 5))
    assert clock.warm("card_nb_tx_30d") and not clock.warm("merchant_nb_tx_1d")
    assert clock.missing_s("merchant_nb_tx_1d") == 10 * DAY_S


def test_a_worker_restarted_on_warm_state_is_credited_with_its_history_at_once() -> None:
    clock = HistoryClock(NAMES, probe_rows=10)
    # 29 other transactions in 30 days for 1 in the last day: a month of history.
    clock.observe(rows(10, 2, 30, m_1d=3, m_30d=90), np.full(10, 1_700_000_000))
    assert clock.credit_s == {"card": 30 * DAY_S, "merchant": 40 * DAY_S}
    assert all(clock.warm(n) for n in NAMES)


def test_state_restored_from_a_young_stream_is_credited_only_with_its_own_age() -> None:
    clock = HistoryClock(NAMES, probe_rows=4)
    # (3-1)/(2-1): two days of history; merchants without a full month of labels get none.
    clock.observe(rows(4, 2, 3, m_1d=1, m_30d=5), np.full(4, 1_700_000_000))
    assert clock.credit_s == pytest.approx({"card": 2 * DAY_S, "merchant": 0.0})
    assert clock.warm("card_nb_tx_1d") and not clock.warm("card_nb_tx_7d")
    assert not clock.warm("merchant_nb_tx_1d")


def test_without_event_times_only_the_restored_credit_counts() -> None:
    clock = HistoryClock(NAMES, probe_rows=2)
    clock.observe(rows(2, 1, 1), None)
    clock.observe(rows(2, 1, 1), None)
    assert clock.traffic_span_s == 0 and not clock.warm("card_nb_tx_1d")


def test_state_younger_than_the_ratio_can_read_gets_no_credit() -> None:
    clock = HistoryClock(NAMES, probe_rows=4)
    # Everything in the last 24 hours (ratio 1): the state could be two hours old.
    clock.observe(rows(4, 3, 3), np.full(4, 1_700_000_000))
    assert clock.credit_s is not None and clock.credit_s["card"] == 0.0
    assert not clock.warm("card_nb_tx_1d")
