"""The backtest against a literal port of the Fraud Detection Handbook's own functions.

The port follows the Handbook's shared functions (Le Borgne et al., "Reproducible Machine
Learning for Credit Card Fraud Detection - Practical Handbook", chapter 3 "Baseline fraud
detection system" and the chapter 4 shared functions) line by line, each pandas step done on a
list of row dicts keyed by the Handbook's column names, each step under the line it ports
(pandas is not a dependency). The project's ``split`` and ``card_precision_at_k`` must give the
port's rows and numbers on seeded random data: the test fails if either drifts from the Handbook.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from fraudstream.features.definitions import DAY_S
from fraudstream.model_registry.backtest import Windows, card_precision_at_k, split
from fraudstream.simulator import Dataset

#: One transaction: a row of the Handbook's DataFrame, keyed by its column names; ``index`` is
#: the DataFrame's index (the row's position in the whole data set, kept through every filter).
Row = dict[str, Any]

#: 2018-04-01T00:00:00Z, the first day of the Handbook's simulated data: ``TX_TIME_SECONDS`` and
#: ``TX_TIME_DAYS`` count from it.
HANDBOOK_START_S = 1_522_540_800


def handbook_frame(timestamps: Sequence[int], customer_ids: Sequence[Any],
                   tx_fraud: Sequence[int], predictions: Sequence[float] | None = None
                   ) -> list[Row]:
    """The Handbook's transactions DataFrame (with a ``predictions`` column when given)."""
    rows: list[Row] = []
    for i, (ts, customer, fraud) in enumerate(zip(timestamps, customer_ids, tx_fraud,
                                                  strict=True)):
        seconds = int(ts) - HANDBOOK_START_S
        row: Row = {"index": i, "TRANSACTION_ID": i, "TX_DATETIME": int(ts),
                    "CUSTOMER_ID": customer, "TX_TIME_SECONDS": seconds,
                    "TX_TIME_DAYS": seconds // DAY_S, "TX_FRAUD": int(fraud)}
        if predictions is not None:
            row["predictions"] = float(predictions[i])
        rows.append(row)
    return rows


def get_train_test_set(transactions_df: list[Row], start_date_training: int,
                       delta_train: int = 7, delta_delay: int = 7,
                       delta_test: int = 7) -> tuple[list[Row], list[Row]]:
    """Port of the Handbook's ``get_train_test_set`` (``start_date_training`` in unix seconds)."""
    # train_df = transactions_df[(transactions_df.TX_DATETIME>=start_date_training) &
    #     (transactions_df.TX_DATETIME<start_date_training+datetime.timedelta(days=delta_train))]
    train_df = [tx for tx in transactions_df
                if tx["TX_DATETIME"] >= start_date_training
                and tx["TX_DATETIME"] < start_date_training + delta_train * DAY_S]

    # test_df = []
    test_df_days: list[list[Row]] = []

    # known_defrauded_customers = set(train_df[train_df.TX_FRAUD==1].CUSTOMER_ID)
    known_defrauded_customers = {tx["CUSTOMER_ID"] for tx in train_df if tx["TX_FRAUD"] == 1}

    # start_tx_time_days_training = train_df.TX_TIME_DAYS.min()
    start_tx_time_days_training = min(tx["TX_TIME_DAYS"] for tx in train_df)

    # for day in range(delta_test):
    for day in range(delta_test):
        # test_df_day = transactions_df[transactions_df.TX_TIME_DAYS==start_tx_time_days_training+
        #                                                 delta_train+delta_delay+day]
        test_df_day = [tx for tx in transactions_df
                       if tx["TX_TIME_DAYS"] == start_tx_time_days_training + delta_train
                       + delta_delay + day]

        # test_df_day_delay_period = transactions_df[transactions_df.TX_TIME_DAYS==
        #                                 start_tx_time_days_training+delta_train+day-1]
        test_df_day_delay_period = [tx for tx in transactions_df
                                    if tx["TX_TIME_DAYS"] == start_tx_time_days_training
                                    + delta_train + day - 1]

        # new_defrauded_customers = set(test_df_day_delay_period[
        #     test_df_day_delay_period.TX_FRAUD==1].CUSTOMER_ID)
        new_defrauded_customers = {tx["CUSTOMER_ID"] for tx in test_df_day_delay_period
                                   if tx["TX_FRAUD"] == 1}
        # known_defrauded_customers = known_defrauded_customers.union(new_defrauded_customers)
        known_defrauded_customers = known_defrauded_customers.union(new_defrauded_customers)

        # test_df_day = test_df_day[~test_df_day.CUSTOMER_ID.isin(known_defrauded_customers)]
        test_df_day = [tx for tx in test_df_day
                       if tx["CUSTOMER_ID"] not in known_defrauded_customers]

        # test_df.append(test_df_day)
        test_df_days.append(test_df_day)

    # test_df = pd.concat(test_df)
    test_df = [tx for test_df_day in test_df_days for tx in test_df_day]

    # train_df=train_df.sort_values('TRANSACTION_ID')
    # test_df=test_df.sort_values('TRANSACTION_ID')
    train_df = sorted(train_df, key=lambda tx: tx["TRANSACTION_ID"])
    test_df = sorted(test_df, key=lambda tx: tx["TRANSACTION_ID"])

    # return (train_df, test_df)
    return train_df, test_df


def card_precision_top_k_day(df_day: list[Row], top_k: int) -> tuple[list[Any], float]:
    """Port of the Handbook's ``card_precision_top_k_day``."""
    # df_day = df_day.groupby('CUSTOMER_ID').max()
    #   one row per CUSTOMER_ID, in CUSTOMER_ID order, holding the max of every other column
    #   (``card_precision_top_k`` passes only predictions, CUSTOMER_ID and TX_FRAUD)
    grouped: dict[Any, Row] = {}
    for tx in df_day:
        group = grouped.setdefault(tx["CUSTOMER_ID"], {"CUSTOMER_ID": tx["CUSTOMER_ID"],
                                                       "predictions": tx["predictions"],
                                                       "TX_FRAUD": tx["TX_FRAUD"]})
        group["predictions"] = max(group["predictions"], tx["predictions"])
        group["TX_FRAUD"] = max(group["TX_FRAUD"], tx["TX_FRAUD"])
    by_customer = [grouped[customer] for customer in sorted(grouped)]
    #   .sort_values(by="predictions", ascending=False).reset_index(drop=False)
    #   pandas' default sort is not stable, so the Handbook leaves the order of tied scores open;
    #   a stable sort keeps them in CUSTOMER_ID order (the tests' data hold no ties).
    ranked = sorted(by_customer, key=lambda group: group["predictions"], reverse=True)

    # df_day_top_k=df_day.head(top_k)
    df_day_top_k = ranked[:top_k]
    # list_detected_compromised_cards=list(df_day_top_k[df_day_top_k.TX_FRAUD==1].CUSTOMER_ID)
    list_detected_compromised_cards = [group["CUSTOMER_ID"] for group in df_day_top_k
                                       if group["TX_FRAUD"] == 1]

    # card_precision_top_k = len(list_detected_compromised_cards) / top_k
    card_precision_top_k = len(list_detected_compromised_cards) / top_k

    # return list_detected_compromised_cards, card_precision_top_k
    return list_detected_compromised_cards, card_precision_top_k


def card_precision_top_k(predictions_df: list[Row], top_k: int,
                         remove_detected_compromised_cards: bool = True
                         ) -> tuple[list[int], list[float], float]:
    """Port of the Handbook's ``card_precision_top_k``: (compromised cards per day, precision
    per day, mean precision)."""
    # list_days=list(predictions_df['TX_TIME_DAYS'].unique())
    # list_days.sort()
    list_days = sorted({tx["TX_TIME_DAYS"] for tx in predictions_df})

    # list_detected_compromised_cards = []
    list_detected_compromised_cards: list[Any] = []

    # card_precision_top_k_per_day_list = []
    # nb_compromised_cards_per_day = []
    card_precision_top_k_per_day_list: list[float] = []
    nb_compromised_cards_per_day: list[int] = []

    # for day in list_days:
    for day in list_days:
        # df_day = predictions_df[predictions_df['TX_TIME_DAYS']==day]
        # df_day = df_day[['predictions', 'CUSTOMER_ID', 'TX_FRAUD']]
        df_day = [{"predictions": tx["predictions"], "CUSTOMER_ID": tx["CUSTOMER_ID"],
                   "TX_FRAUD": tx["TX_FRAUD"]}
                  for tx in predictions_df if tx["TX_TIME_DAYS"] == day]

        # df_day = df_day[df_day.CUSTOMER_ID.isin(list_detected_compromised_cards)==False]
        df_day = [tx for tx in df_day
                  if tx["CUSTOMER_ID"] not in list_detected_compromised_cards]

        # nb_compromised_cards_per_day.append(len(df_day[df_day.TX_FRAUD==1].CUSTOMER_ID.unique()))
        nb_compromised_cards_per_day.append(
            len({tx["CUSTOMER_ID"] for tx in df_day if tx["TX_FRAUD"] == 1}))

        # detected_compromised_cards, card_precision_top_k = card_precision_top_k_day(df_day,top_k)
        detected_compromised_cards, precision = card_precision_top_k_day(df_day, top_k)

        # card_precision_top_k_per_day_list.append(card_precision_top_k)
        card_precision_top_k_per_day_list.append(precision)

        # if remove_detected_compromised_cards:
        #     list_detected_compromised_cards.extend(detected_compromised_cards)
        if remove_detected_compromised_cards:
            list_detected_compromised_cards.extend(detected_compromised_cards)

    # mean_card_precision_top_k = np.array(card_precision_top_k_per_day_list).mean()
    mean_card_precision_top_k = (sum(card_precision_top_k_per_day_list)
                                 / len(card_precision_top_k_per_day_list))

    # return nb_compromised_cards_per_day,card_precision_top_k_per_day_list,
    #        mean_card_precision_top_k
    return (nb_compromised_cards_per_day, card_precision_top_k_per_day_list,
            mean_card_precision_top_k)


# --- The port on hand-computed cases: it is the Handbook, not a copy of the project's code. ---


def test_the_port_computes_card_precision_by_hand() -> None:
    # Day 0, cards by max score: X .9 (fraud), Y .8, Z .7 (fraud). Day 1: X .99 (fraud), W .95,
    # Z .6 (fraud), Y .5. k=2: day 0 X, Y -> 1/2 (X detected); day 1 without X: W, Z -> 1/2.
    # Without removal day 1 is X, W -> 1/2 as well; k=1 tells them apart: 1 then W -> 0, or
    # 1 then X again -> 1.
    t = HANDBOOK_START_S + 3600
    df = handbook_frame([t, t, t, t, t + DAY_S, t + DAY_S, t + DAY_S, t + DAY_S],
                        ["X", "X", "Y", "Z", "X", "Z", "Y", "W"], [0, 1, 0, 1, 1, 1, 0, 0],
                        [0.9, 0.1, 0.8, 0.7, 0.99, 0.6, 0.5, 0.95])
    assert card_precision_top_k(df, 2) == ([2, 1], [0.5, 0.5], 0.5)
    assert card_precision_top_k(df, 1) == ([2, 1], [1.0, 0.0], 0.5)
    assert card_precision_top_k(df, 1, remove_detected_compromised_cards=False) == (
        [2, 2], [1.0, 1.0], 1.0)
    # k=3: day 0 X, Y, Z -> 2/3; day 1 without X and Z: W, Y -> 0 (k stays the divisor), and
    # no compromised card left that day.
    assert card_precision_top_k(df, 3) == ([2, 0], [2 / 3, 0.0], 1 / 3)


def test_the_port_splits_by_hand() -> None:
    # Train days 0-1, delay 2 days, test days 4-5. The delay-period day read before test day
    # 4 + d is day 2 + d - 1: day 1 (no fraud) before day 4, day 2 before day 5. A: fraud in
    # training, never tested. B: fraud on day 2, known from day 5. C: fraud on day 3, known
    # from day 6 only (after the test).
    rows = [(0, "A", 1), (1, "B", 0), (2, "B", 1), (3, "C", 1),
            (4, "A", 0), (4, "B", 0), (4, "C", 0), (5, "A", 0), (5, "B", 0), (5, "C", 1)]
    df = handbook_frame([HANDBOOK_START_S + d * DAY_S + 60 * i for i, (d, _c, _f)
                         in enumerate(rows)], [c for _d, c, _f in rows], [f for _d, _c, f in rows])
    train_df, test_df = get_train_test_set(df, HANDBOOK_START_S, delta_train=2, delta_delay=2,
                                           delta_test=2)
    assert [tx["index"] for tx in train_df] == [0, 1]
    assert [(rows[tx["index"]][0], tx["CUSTOMER_ID"]) for tx in test_df] == [
        (4, "B"), (4, "C"), (5, "C")]


# --- The project's functions against the port, on seeded random data without score ties. ---

T0 = HANDBOOK_START_S
DAY0 = T0 // DAY_S
SEEDS = [1, 2, 3, 4]


def random_transactions(seed: int) -> tuple[Dataset, np.ndarray]:
    """~300 transactions over 10 days, 36 cards, a third of them compromised (fraud rate ~0.3
    on those, ~10 % overall), and a distinct score per transaction (frauds score higher on
    average)."""
    rng = random.Random(seed)
    n, n_days, n_cards = 300, 10, 36
    compromised = set(rng.sample(range(n_cards), n_cards // 3))
    ts = sorted(T0 + rng.randrange(n_days * DAY_S) for _ in range(n))
    card_numbers = [rng.randrange(n_cards) for _ in range(n)]
    fraud = [int(c in compromised and rng.random() < 0.3) for c in card_numbers]
    scores = np.array([rng.random() + 0.3 * f for f in fraud])
    assert len(set(scores.tolist())) == n  # no ties: the Handbook's order of ties is open
    assert {t // DAY_S for t in ts} == set(range(DAY0, DAY0 + n_days))  # every day has rows
    assert 0.05 < sum(fraud) / n < 0.15
    ds = Dataset(
        transaction_id=np.array([f"t{i}" for i in range(n)], dtype=object),
        timestamp_s=np.array(ts, dtype=np.int64),
        card_id=np.array([f"C{c}" for c in card_numbers], dtype=object),
        merchant_id=np.array(["M1"] * n, dtype=object), amount=np.full(n, 10.0),
        is_fraud=np.array(fraud, dtype=np.int8), fraud_scenario=np.zeros(n, dtype=np.int8))
    return ds, scores


@pytest.mark.parametrize("k", [1, 5, 20, 100])
@pytest.mark.parametrize("seed", SEEDS)
def test_card_precision_at_k_equals_the_handbook(seed: int, k: int) -> None:
    ds, scores = random_transactions(seed)
    df = handbook_frame(ds.timestamp_s.tolist(), ds.card_id.tolist(), ds.is_fraud.tolist(),
                        scores.tolist())
    _nb_compromised, per_day, expected = card_precision_top_k(df, k)
    assert len(per_day) == 10
    got = card_precision_at_k(ds.timestamp_s // DAY_S, ds.card_id, ds.is_fraud, scores, k)
    assert got == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_random_data_exercise_the_removal_of_detected_cards(seed: int) -> None:
    ds, scores = random_transactions(seed)
    df = handbook_frame(ds.timestamp_s.tolist(), ds.card_id.tolist(), ds.is_fraud.tolist(),
                        scores.tolist())
    # Keeping detected cards changes the result for some k: a comparison that passes is not
    # one where removal never mattered.
    assert any(card_precision_top_k(df, k)[2] != card_precision_top_k(df, k, False)[2]
               for k in (1, 5, 20))


@pytest.mark.parametrize("windows", [
    Windows(DAY0, train_days=3, delay_days=2, test_days=3),
    Windows(DAY0 + 1, train_days=2, delay_days=3, test_days=4),
    Windows(DAY0 + 2, train_days=4, delay_days=0, test_days=4),
    Windows(DAY0, train_days=7, delay_days=1, test_days=2),
    Windows(DAY0 + 3, train_days=1, delay_days=4, test_days=5),  # test days past the data
], ids=lambda w: f"start{w.train_start_day - DAY0}-{w.train_days}-{w.delay_days}-{w.test_days}")
@pytest.mark.parametrize("seed", SEEDS)
def test_split_equals_the_handbook(seed: int, windows: Windows) -> None:
    ds, _scores = random_transactions(seed)
    df = handbook_frame(ds.timestamp_s.tolist(), ds.card_id.tolist(), ds.is_fraud.tolist())
    train_df, test_df = get_train_test_set(df, windows.train_start_day * DAY_S,
                                           delta_train=windows.train_days,
                                           delta_delay=windows.delay_days,
                                           delta_test=windows.test_days)
    parts = split(ds, windows)
    assert sorted(parts.train.tolist()) == [tx["index"] for tx in train_df]
    assert sorted(parts.evaluated.tolist()) == [tx["index"] for tx in test_df]
    # Known cards were removed, and some test rows are left: the comparison has teeth.
    in_test_days = [tx for tx in df
                    if windows.test_start_day <= tx["TX_TIME_DAYS"] + DAY0 < windows.end_day]
    assert 0 < len(test_df) < len(in_test_days)
