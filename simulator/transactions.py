"""Transaction generation (Fraud Detection Handbook, Chapter 3.2) and the `simulate` entry point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np

from fraudstream.simulator.profiles import (
    AvailableTerminals,
    CustomerProfiles,
    available_terminals,
    generate_customers,
    generate_terminals,
)
from fraudstream.simulator.records import Dataset, parse_timestamp
from fraudstream.simulator.scenarios import inject_frauds

SECONDS_PER_DAY = 86400
TIME_OF_DAY_MEAN = SECONDS_PER_DAY / 2
TIME_OF_DAY_STD = 20000.0

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of a simulated dataset; defaults are the Handbook's."""

    n_customers: int = 5000
    n_terminals: int = 10000
    nb_days: int = 183
    start_date: str = "2018-04-01"
    radius: float = 5.0
    seed: int = 0
    amount_scale: float = 1.0  # drift: multiplies genuine amounts before scenario 1
    id_prefix: str = "tx"  # transaction ids are f"{id_prefix}-{index:09d}" in time order


@dataclass(frozen=True)
class RawTransactions:
    """Genuine transactions as integer-coded columns, sorted by time."""

    customer: np.ndarray  # int64 customer index
    terminal: np.ndarray  # int64 terminal index
    day: np.ndarray  # int64 day index from the start date
    time_s: np.ndarray  # int64 seconds since the start date
    amount: np.ndarray  # float64, rounded to cents

    def __len__(self) -> int:
        return len(self.time_s)


def start_epoch(start_date: str) -> int:
    """Unix seconds of a "YYYY-MM-DD" date (midnight UTC) or of an RFC 3339 timestamp."""
    try:
        day = date.fromisoformat(start_date)
    except ValueError:
        return parse_timestamp(start_date)
    return int((day - date(1970, 1, 1)).days) * SECONDS_PER_DAY


def generate_day(
    day: int,
    customers: CustomerProfiles,
    reach: AvailableTerminals,
    rng: np.random.Generator,
    amount_scale: float = 1.0,
) -> RawTransactions:
    """One day of genuine transactions for all customers, in customer order."""
    counts = rng.poisson(customers.mean_nb_tx_per_day)
    customer = np.repeat(np.arange(len(customers), dtype=np.int64), counts)
    time_s = rng.normal(TIME_OF_DAY_MEAN, TIME_OF_DAY_STD, size=len(customer)).astype(np.int64)
    mean = customers.mean_amount[customer]
    amount = rng.normal(mean, customers.std_amount[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean[negative])
    amount = np.round(amount * amount_scale, 2)
    n_reach = reach.counts[customer]
    pick = np.floor(rng.uniform(size=len(customer)) * n_reach).astype(np.int64)
    keep = (time_s > 0) & (time_s < SECONDS_PER_DAY) & (n_reach > 0)
    terminal = reach.terminals[(reach.offsets[customer] + pick)[keep]]
    day_column = np.full(int(keep.sum()), day, dtype=np.int64)
    return RawTransactions(
        customer[keep], terminal, day_column, time_s[keep] + day * SECONDS_PER_DAY, amount[keep]
    )


def generate_transactions(
    customers: CustomerProfiles,
    reach: AvailableTerminals,
    nb_days: int,
    rng: np.random.Generator,
    amount_scale: float = 1.0,
    progress: Progress | None = None,
) -> RawTransactions:
    """All genuine transactions over nb_days, stably sorted by time."""
    days: list[RawTransactions] = []
    for day in range(nb_days):
        days.append(generate_day(day, customers, reach, rng, amount_scale))
        if progress is not None:
            progress(day + 1, nb_days)
    if not days:
        empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        return RawTransactions(empty_i, empty_i, empty_i, empty_i, empty_f)
    merged = [np.concatenate([getattr(d, name) for d in days]) for name in _RAW_COLUMNS]
    order = np.argsort(merged[3], kind="stable")
    return RawTransactions(*(column[order] for column in merged))


_RAW_COLUMNS = ("customer", "terminal", "day", "time_s", "amount")


def _labels(prefix: str, count: int) -> np.ndarray:
    """Object array of f"{prefix}{i:05d}" for i in range(count)."""
    return np.array([f"{prefix}{i:05d}" for i in range(count)], dtype=object)


def simulate(config: SimulationConfig, progress: Progress | None = None) -> Dataset:
    """Generate the Handbook's simulated transactions with fraud labels for `config`."""
    if min(config.n_customers, config.n_terminals, config.nb_days) < 0 or config.radius < 0:
        raise ValueError(f"counts and radius must be non-negative: {config}")
    if not config.amount_scale > 0:
        raise ValueError(f"amount_scale must be positive, got {config.amount_scale}")
    epoch = start_epoch(config.start_date)
    profile_rng, tx_rng, fraud_rng = np.random.default_rng(config.seed).spawn(3)
    customers = generate_customers(config.n_customers, profile_rng)
    terminals = generate_terminals(config.n_terminals, profile_rng)
    reach = available_terminals(customers, terminals, config.radius)
    raw = generate_transactions(
        customers, reach, config.nb_days, tx_rng, config.amount_scale, progress
    )
    labels = inject_frauds(
        raw.customer,
        raw.terminal,
        raw.day,
        raw.amount,
        config.n_customers,
        config.n_terminals,
        config.nb_days,
        fraud_rng,
    )
    prefix = config.id_prefix
    return Dataset(
        transaction_id=np.array([f"{prefix}-{i:09d}" for i in range(len(raw))], dtype=object),
        timestamp_s=raw.time_s + epoch,
        card_id=_labels("C", config.n_customers)[raw.customer],
        merchant_id=_labels("M", config.n_terminals)[raw.terminal],
        amount=labels.amount,
        is_fraud=labels.is_fraud,
        fraud_scenario=labels.fraud_scenario,
    )
