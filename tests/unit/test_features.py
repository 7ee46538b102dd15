import math

import numpy as np

from features import FEATURE_NAMES, CardState, MerchantState, build_feature_matrix, compute_features
from features.definitions import DAY_S, context_features

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
    f = dict(zip(FEATURE_NAMES[4:12], card.observe(T0 + 2 * DAY_S, 50.0), strict=True))
    assert f["card_nb_tx_1d"] == 1.0 and f["card_avg_amount_1d"] == 50.0
    assert f["card_nb_tx_7d"] == 3.0 and f["card_avg_amount_7d"] == 30.0
    assert math.isclose(f["card_amount_to_avg_30d"], 50.0 / 20.0)
    assert math.isclose(f["card_log_seconds_since_last"], math.log1p(2 * DAY_S - 3600))
    later = dict(zip(FEATURE_NAMES[4:12], card.observe(T0 + 40 * DAY_S, 5.0), strict=True))
    assert later["card_nb_tx_30d"] == 1.0


def test_merchant_risk_uses_only_labels_older_than_the_delay() -> None:
    merchant = MerchantState()
    merchant.observe_label(T0, True)
    merchant.observe_label(T0 + 100, False)
    assert merchant.features(T0 + 3 * DAY_S, delay_days=7)[:2] == [0.0, 0.0]
    nb1, risk1, nb7, risk7, *_ = merchant.features(T0 + 7 * DAY_S, delay_days=7)
    assert (nb1, risk1, nb7, risk7) == (2.0, 0.5, 2.0, 0.5)


def test_state_round_trips_through_the_wire_form() -> None:
    card, merchant = CardState(), MerchantState()
    for i in range(20):
        compute_features(T0 + i * 5000, float(i), card, merchant, 7)
        merchant.observe_label(T0 + i * 5000, i % 3 == 0)
    import orjson

    card2 = CardState.from_wire(orjson.loads(orjson.dumps(card.to_wire())))
    merchant2 = MerchantState.from_wire(orjson.loads(orjson.dumps(merchant.to_wire())))
    assert card2 == card and merchant2 == merchant
    assert card2.observe(T0 + 10**6, 3.0) == card.observe(T0 + 10**6, 3.0)


def test_offline_matrix_equals_online_step_by_step() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    ts = np.sort(rng.integers(T0, T0 + 40 * DAY_S, n))
    cards = [f"C{i}" for i in rng.integers(0, 30, n)]
    merchants = [f"M{i}" for i in rng.integers(0, 50, n)]
    amounts = rng.random(n) * 100
    fraud = (rng.random(n) < 0.05).astype(int)
    matrix = build_feature_matrix(ts, cards, merchants, amounts, fraud, 7)
    assert matrix.shape == (n, len(FEATURE_NAMES))
    card_states: dict[str, CardState] = {}
    merchant_states: dict[str, MerchantState] = {}
    for i in range(n):
        card = card_states.setdefault(cards[i], CardState())
        merchant = merchant_states.setdefault(merchants[i], MerchantState())
        row = compute_features(int(ts[i]), float(amounts[i]), card, merchant, 7)
        merchant.observe_label(int(ts[i]), bool(fraud[i]))
        assert row == matrix[i].tolist()
    assert matrix[:, FEATURE_NAMES.index("merchant_risk_30d")].max() > 0


def test_merchant_fraud_days_and_days_since_the_last_known_fraud() -> None:
    merchant = MerchantState()
    merchant.observe_label(T0, True)
    merchant.observe_label(T0 + 2 * DAY_S, True)
    merchant.observe_label(T0 + 3 * DAY_S, False)
    *_, fraud_days, since = merchant.features(T0 + 12 * DAY_S, delay_days=7)
    assert (fraud_days, since) == (2.0, 3.0)  # window ends on day 5; newest fraud on day 2
    *_, fraud_days, since = merchant.features(T0 + 8 * DAY_S, delay_days=7)
    assert (fraud_days, since) == (1.0, 1.0)  # day 2 is not known yet
    assert merchant.features(T0 + 3 * DAY_S, delay_days=7)[-2:] == [0.0, 31.0]
