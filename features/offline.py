"""Offline execution of the feature definitions over a time-ordered labelled dataset."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fraudstream.features.definitions import (
    FEATURE_NAMES,
    CardState,
    MerchantState,
    compute_features,
    label_delay_s,
)


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

    Each label reaches its merchant's state when event time passes its transaction's time plus
    the delay, as a live system with labels on time receives it (the merchant state is then
    the one a worker holds, bounded buckets included); the merchant features read only labels
    of transactions at least the delay old, so no label leaks forward.
    """
    n = len(timestamps)
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    ts_list = np.asarray(timestamps, dtype=np.int64).tolist()
    amt_list = np.asarray(amounts, dtype=np.float64).tolist()
    fraud_list = np.asarray(is_fraud).tolist()
    delay_s = label_delay_s(delay_days)
    # Rows are in time order, so their labels fall due in the same order: row index queue.
    due = 0
    for i in range(n):
        ts = ts_list[i]
        while due < i and ts_list[due] + delay_s <= ts:
            merchants[merchant_ids[due]].observe_label(ts_list[due], bool(fraud_list[due]))
            due += 1
        card = cards.get(card_ids[i])
        if card is None:
            card = cards[card_ids[i]] = CardState()
        merchant = merchants.get(merchant_ids[i])
        if merchant is None:
            merchant = merchants[merchant_ids[i]] = MerchantState()
        out[i] = compute_features(ts, amt_list[i], card, merchant, delay_days)
        if progress is not None and i % 50_000 == 0:
            progress(i)
    return out
