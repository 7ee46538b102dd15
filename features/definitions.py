"""The features of a transaction, defined once and used by training and serving alike.

Context features come from the transaction alone; card features (``features.card``) from the
card's own history; merchant features (``features.merchant``) from the labels of transactions
at least the label delay old (exact seconds), as a live system would know them.
"""

from __future__ import annotations

import math

from fraudstream.features.card import CardState
from fraudstream.features.merchant import MerchantState
from fraudstream.features.windows import (
    CARD_WINDOWS_DAYS,
    DAY_S,
    MERCHANT_KEEP_DAYS,
    MERCHANT_WINDOWS_DAYS,
    NO_PREVIOUS_S,
    label_delay_s,
    lookback_days,
)

__all__ = ["CARD_FEATURES", "CARD_FEATURE_COUNT", "CARD_WINDOWS_DAYS", "CONTEXT_FEATURES",
           "CONTEXT_FEATURE_COUNT", "DAY_S", "FEATURE_NAMES", "MERCHANT_FEATURES",
           "MERCHANT_FEATURE_COUNT", "MERCHANT_KEEP_DAYS",
           "MERCHANT_WINDOWS_DAYS", "NO_PREVIOUS_S", "CardState", "MerchantState",
           "compute_features", "context_features", "label_delay_s", "lookback_days"]

#: Features of the transaction alone (``context_features``).
CONTEXT_FEATURES: tuple[str, ...] = ("amount", "log_amount", "is_weekend", "is_night")
#: Features of the card's own history (``CardState.observe``).
CARD_FEATURES: tuple[str, ...] = (
    "card_nb_tx_1d",
    "card_avg_amount_1d",
    *(f"card_{kind}_{w}d" for w in CARD_WINDOWS_DAYS for kind in ("nb_tx", "avg_amount")),
    "card_amount_to_avg_30d",
    "card_amount_to_avg_7_30d",
    "card_log_seconds_since_last",
)
#: Features of the merchant's labels at least the delay old (``MerchantState.features``).
MERCHANT_FEATURES: tuple[str, ...] = (
    *(f"merchant_{kind}_{w}d" for w in MERCHANT_WINDOWS_DAYS for kind in ("nb_tx", "risk")),
    "merchant_fraud_days_30d",
    "merchant_days_since_fraud",
)
#: The model's input, in order: context, card, merchant (``compute_features``).
FEATURE_NAMES: tuple[str, ...] = (*CONTEXT_FEATURES, *CARD_FEATURES, *MERCHANT_FEATURES)
CONTEXT_FEATURE_COUNT = len(CONTEXT_FEATURES)
CARD_FEATURE_COUNT = len(CARD_FEATURES)
MERCHANT_FEATURE_COUNT = len(MERCHANT_FEATURES)


def context_features(ts: int, amount: float) -> list[float]:
    """Features of the transaction alone: amount, weekend, night (UTC)."""
    days_since_epoch, second_of_day = divmod(ts, DAY_S)
    weekday = (days_since_epoch + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return [amount, math.log1p(amount), float(weekday >= 5), float(second_of_day < 6 * 3600)]


def compute_features(ts: int, amount: float, card: CardState, merchant: MerchantState,
                     delay_days: int) -> list[float]:
    """The full feature vector of one transaction; updates ``card`` with it.

    Merchant features use the labels of transactions at least ``delay_days`` × 86,400 seconds
    older than ``ts`` (exact seconds, ``features.merchant``).
    """
    return [*context_features(ts, amount), *card.observe(ts, amount),
            *merchant.features(ts, label_delay_s(delay_days))]
