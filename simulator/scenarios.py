"""The three fraud scenarios of the Fraud Detection Handbook (Chapter 3.2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCENARIO_1_THRESHOLD = 220.0
SCENARIO_2_TERMINALS_PER_DAY = 2
SCENARIO_2_WINDOW_DAYS = 28
SCENARIO_3_CUSTOMERS_PER_DAY = 3
SCENARIO_3_WINDOW_DAYS = 14
SCENARIO_3_AMOUNT_FACTOR = 5.0


@dataclass(frozen=True)
class FraudLabels:
    """Amounts after fraud injection plus the fraud label and scenario of each transaction."""

    amount: np.ndarray  # float64
    is_fraud: np.ndarray  # int8 0/1
    fraud_scenario: np.ndarray  # int8 0..3


def scenario_1(amount: np.ndarray) -> np.ndarray:
    """Mask of transactions whose amount exceeds the scenario-1 threshold (220)."""
    return np.asarray(amount > SCENARIO_1_THRESHOLD)


def scenario_2(
    terminal: np.ndarray, day: np.ndarray, n_terminals: int, nb_days: int, rng: np.random.Generator
) -> np.ndarray:
    """Mask of transactions on terminals compromised in the previous 28 days (2 per day)."""
    k = min(SCENARIO_2_TERMINALS_PER_DAY, n_terminals)
    compromised = np.zeros((n_terminals, max(nb_days, 1)), dtype=bool)
    for d in range(nb_days):
        picked = rng.choice(n_terminals, size=k, replace=False)
        compromised[picked, d : d + SCENARIO_2_WINDOW_DAYS] = True
    if len(terminal) == 0:
        return np.zeros(0, dtype=bool)
    return compromised[terminal, day]


def scenario_3(
    customer: np.ndarray, day: np.ndarray, n_customers: int, nb_days: int, rng: np.random.Generator
) -> np.ndarray:
    """Times each transaction is hit by scenario 3 (1/3 of a compromised customer's 14-day txs)."""
    hits = np.zeros(len(customer), dtype=np.int64)
    k = min(SCENARIO_3_CUSTOMERS_PER_DAY, n_customers)
    if k == 0:
        return hits
    order = np.argsort(customer, kind="stable")  # per customer, still in time (hence day) order
    bounds = np.searchsorted(customer[order], np.arange(n_customers + 1))
    for d in range(nb_days):
        picked = rng.choice(n_customers, size=k, replace=False)
        windows = []
        for c in picked:
            own = order[bounds[c] : bounds[c + 1]]
            lo, hi = np.searchsorted(day[own], [d, d + SCENARIO_3_WINDOW_DAYS])
            windows.append(own[lo:hi])
        candidates = np.sort(np.concatenate(windows))
        chosen = rng.choice(candidates, size=len(candidates) // 3, replace=False)
        hits[chosen] += 1
    return hits


def inject_frauds(
    customer: np.ndarray,
    terminal: np.ndarray,
    day: np.ndarray,
    amount: np.ndarray,
    n_customers: int,
    n_terminals: int,
    nb_days: int,
    rng: np.random.Generator,
) -> FraudLabels:
    """Apply scenarios 1, 2 then 3 (later ones override the scenario label) to time-sorted txs."""
    scenario = np.zeros(len(amount), dtype=np.int8)
    scenario[scenario_1(amount)] = 1
    scenario[scenario_2(terminal, day, n_terminals, nb_days, rng)] = 2
    hits = scenario_3(customer, day, n_customers, nb_days, rng)
    hit = hits > 0
    scenario[hit] = 3
    new_amount = amount.astype(np.float64, copy=True)
    new_amount[hit] = np.round(new_amount[hit] * SCENARIO_3_AMOUNT_FACTOR ** hits[hit], 2)
    return FraudLabels(new_amount, (scenario > 0).astype(np.int8), scenario)
