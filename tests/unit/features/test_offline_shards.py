"""The offline matrix, computed in card and merchant shards over processes, equals the workers'
step: ``compute_features`` per transaction with each label delivered when it falls due."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.features import FEATURE_NAMES, build_feature_matrix, compute_features
from fraudstream.features.definitions import CardState, MerchantState, label_delay_s
from fraudstream.features.offline import shard_of
from fraudstream.simulator import Dataset, SimulationConfig, simulate


@pytest.fixture(scope="module")
def world() -> Dataset:
    return simulate(SimulationConfig(n_customers=150, n_terminals=60, nb_days=45, seed=11))


def stepwise(ds: Dataset, delay_days: int) -> np.ndarray:
    """What a worker computes: one transaction at a time, labels applied once due."""
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    ts = ds.timestamp_s.tolist()
    delay_s = label_delay_s(delay_days)
    rows, due = [], 0
    for i, t in enumerate(ts):
        while due < i and ts[due] + delay_s <= t:
            merchants[ds.merchant_id[due]].observe_label(ts[due], bool(ds.is_fraud[due]))
            due += 1
        card = cards.setdefault(ds.card_id[i], CardState())
        merchant = merchants.setdefault(ds.merchant_id[i], MerchantState())
        rows.append(compute_features(t, float(ds.amount[i]), card, merchant, delay_days))
    return np.array(rows)


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_shards_in_processes_give_the_workers_features(world: Dataset, jobs: int) -> None:
    assert world.is_fraud.sum() > 20  # merchant features see frauds
    expected = stepwise(world, 7)
    got = build_feature_matrix(world.timestamp_s, world.card_id, world.merchant_id,
                               world.amount, world.is_fraud, 7, jobs=jobs)
    assert got.shape == (len(world), len(FEATURE_NAMES))
    np.testing.assert_array_equal(got, expected)


def test_progress_reaches_every_row(world: Dataset) -> None:
    seen: list[int] = []
    build_feature_matrix(world.timestamp_s, world.card_id, world.merchant_id, world.amount,
                         world.is_fraud, 7, progress=seen.append, jobs=2)
    assert seen == sorted(seen) and seen[-1] == len(world)


def test_shards_number_keys_in_order_of_first_appearance() -> None:
    assert shard_of(["b", "a", "b", "c", "d"], 2).tolist() == [0, 1, 0, 0, 1]
