"""Offline execution of the feature definitions over a time-ordered labelled dataset.

A transaction's card features depend only on the earlier transactions of its card, and its
merchant features only on the labels of the earlier transactions of its merchant. So the matrix
is computed in column blocks over shards: the card block by shards of cards, the merchant block
by shards of merchants, each shard in time order through the same ``CardState.observe`` and
``MerchantState`` calls, in the same order, that the workers make for those cards and merchants
(``features.definitions.compute_features``); the context block is per row. Shards run in
separate processes (``jobs``): the result is the same for any number of them. The processes are
spawned, so a script that calls ``build_feature_matrix`` on ``PARALLEL_MIN_ROWS`` rows or more
needs the usual ``if __name__ == "__main__":`` guard (the ``fraudstream`` command has it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import numpy as np

from fraudstream.features.definitions import (
    CARD_FEATURE_COUNT,
    CONTEXT_FEATURE_COUNT,
    FEATURE_NAMES,
    MERCHANT_FEATURE_COUNT,
    CardState,
    MerchantState,
    context_features,
    label_delay_s,
)

#: Below this many rows one process does it all (starting processes costs about a second).
PARALLEL_MIN_ROWS = 100_000
#: Rows per progress report of a shard run in-process.
_PROGRESS_EVERY = 50_000

_CARD = slice(CONTEXT_FEATURE_COUNT, CONTEXT_FEATURE_COUNT + CARD_FEATURE_COUNT)
_MERCHANT = slice(_CARD.stop, _CARD.stop + MERCHANT_FEATURE_COUNT)


def default_jobs() -> int:
    """Processes for the feature shards: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def card_block(timestamps: list[int], amounts: list[float], card_ids: list[str]) -> np.ndarray:
    """Card features of rows in time order (all rows of every card they name)."""
    out = np.empty((len(timestamps), CARD_FEATURE_COUNT), dtype=np.float64)
    cards: dict[str, CardState] = {}
    for i, (ts, amount, card_id) in enumerate(zip(timestamps, amounts, card_ids, strict=True)):
        card = cards.get(card_id)
        if card is None:
            card = cards[card_id] = CardState()
        out[i] = card.observe(ts, amount)
    return out


def merchant_block(timestamps: list[int], merchant_ids: list[str], is_fraud: list[int],
                   delay_days: int) -> np.ndarray:
    """Merchant features of rows in time order (all rows of every merchant they name).

    Each label reaches its merchant's state when event time passes its transaction's time plus
    the delay, as a live system with labels on time receives it (the merchant state is then
    the one a worker holds, bounded buckets included); the merchant features read only labels
    of transactions at least the delay old, so no label leaks forward.
    """
    out = np.empty((len(timestamps), MERCHANT_FEATURE_COUNT), dtype=np.float64)
    merchants: dict[str, MerchantState] = {}
    delay_s = label_delay_s(delay_days)
    # Rows are in time order, so their labels fall due in the same order: row index queue.
    due = 0
    for i, (ts, merchant_id) in enumerate(zip(timestamps, merchant_ids, strict=True)):
        while due < i and timestamps[due] + delay_s <= ts:
            merchants[merchant_ids[due]].observe_label(timestamps[due], bool(is_fraud[due]))
            due += 1
        merchant = merchants.get(merchant_id)
        if merchant is None:
            merchant = merchants[merchant_id] = MerchantState()
        out[i] = merchant.features(ts, delay_s)
    return out


def shard_of(keys: list[str], shards: int) -> np.ndarray:
    """Each row's shard: keys numbered in order of first appearance, then taken modulo."""
    numbers: dict[str, int] = {}
    codes = np.fromiter((numbers.setdefault(k, len(numbers)) for k in keys), dtype=np.int64,
                        count=len(keys))
    return codes % shards


def build_feature_matrix(
    timestamps: Sequence[int] | np.ndarray,
    card_ids: Sequence[str] | np.ndarray,
    merchant_ids: Sequence[str] | np.ndarray,
    amounts: Sequence[float] | np.ndarray,
    is_fraud: Sequence[int] | np.ndarray,
    delay_days: int = 7,
    progress: Callable[[int], None] | None = None,
    jobs: int | None = None,
) -> np.ndarray:
    """Features for every row (rows must be in time order), exactly as the workers compute them.

    ``jobs`` processes compute the card and merchant shards (default: the CPUs available, and
    one process below ``PARALLEL_MIN_ROWS`` rows). ``progress`` receives the number of rows whose
    features are complete so far.
    """
    n = len(timestamps)
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    ts = np.asarray(timestamps, dtype=np.int64).tolist()
    amount = np.asarray(amounts, dtype=np.float64).tolist()
    fraud = np.asarray(is_fraud).astype(np.int64).tolist()
    cards = [str(c) for c in card_ids]
    merchants = [str(m) for m in merchant_ids]
    for i in range(n):
        out[i, :CONTEXT_FEATURE_COUNT] = context_features(ts[i], amount[i])
    if jobs is None:
        jobs = default_jobs() if n >= PARALLEL_MIN_ROWS else 1
    if jobs <= 1:
        out[:, _CARD] = card_block(ts, amount, cards)
        if progress is not None:
            progress(n // 2)
        out[:, _MERCHANT] = merchant_block(ts, merchants, fraud, delay_days)
        if progress is not None:
            progress(n)
        return out
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        _run_shards(pool, jobs, out, ts, amount, fraud, cards, merchants, delay_days, progress)
    return out


def _run_shards(pool: Executor, shards: int, out: np.ndarray, ts: list[int],
                amount: list[float], fraud: list[int], cards: list[str], merchants: list[str],
                delay_days: int, progress: Callable[[int], None] | None) -> None:
    tasks: dict[Future[np.ndarray], tuple[slice, np.ndarray]] = {}
    for block, keys in ((_CARD, cards), (_MERCHANT, merchants)):
        shard = shard_of(keys, shards)
        for s in range(shards):
            rows = np.flatnonzero(shard == s)
            ts_s = [ts[i] for i in rows]
            if block is _CARD:
                future = pool.submit(card_block, ts_s, [amount[i] for i in rows],
                                     [cards[i] for i in rows])
            else:
                future = pool.submit(merchant_block, ts_s, [merchants[i] for i in rows],
                                     [fraud[i] for i in rows], delay_days)
            tasks[future] = (block, rows)
    done_rows = 0
    for future in as_completed(tasks):
        block, rows = tasks[future]
        out[rows, block] = future.result()
        done_rows += len(rows)
        if progress is not None:
            progress(done_rows // 2)

