"""Offline execution of the feature definitions over a time-ordered labelled dataset."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from features.definitions import FEATURE_NAMES, CardState, MerchantState, compute_features


def build_feature_matrix(
    timestamps: Sequence[int] | np.ndarray,
    card_ids: Sequence[str] | np.ndarray,
    merchant_ids: Sequence[str] | np.ndarray,
    amounts: Sequence[float] | np.ndarray,
    is_fraud: Sequence[int] | np.ndarray,
    delay_days: int = 7,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Features for every row (rows must be in time order), exactly as the workers compute them.

    Labels of a transaction become known to its merchant's state right after it is scored; the
    merchant features only read days older than ``delay_days``, so no label leaks forward.
    """
    n = len(timestamps)
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    ts_list = np.asarray(timestamps, dtype=np.int64).tolist()
    amt_list = np.asarray(amounts, dtype=np.float64).tolist()
    fraud_list = np.asarray(is_fraud).tolist()
    for i in range(n):
        card = cards.get(card_ids[i])
        if card is None:
            card = cards[card_ids[i]] = CardState()
        merchant = merchants.get(merchant_ids[i])
        if merchant is None:
            merchant = merchants[merchant_ids[i]] = MerchantState()
        out[i] = compute_features(ts_list[i], amt_list[i], card, merchant, delay_days)
        merchant.observe_label(ts_list[i], bool(fraud_list[i]))
        if progress is not None and i % 50_000 == 0:
            progress(i)
    return out
