"""Customer and terminal profiles (Fraud Detection Handbook, Chapter 3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Upper bound on the number of customer x terminal distances held in memory at once.
_DISTANCE_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class CustomerProfiles:
    """Per-customer location and spending habits; customer i is row i."""

    x: np.ndarray
    y: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    mean_nb_tx_per_day: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class TerminalProfiles:
    """Per-terminal location; terminal j is row j."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class AvailableTerminals:
    """Terminals within reach of each customer, in CSR layout."""

    offsets: np.ndarray  # int64, len n_customers + 1
    terminals: np.ndarray  # int64, terminal ids of customer i at offsets[i]:offsets[i+1]

    @property
    def counts(self) -> np.ndarray:
        """Number of available terminals per customer."""
        return np.diff(self.offsets)

    def of(self, customer: int) -> np.ndarray:
        """Available terminal ids of one customer."""
        return self.terminals[self.offsets[customer] : self.offsets[customer + 1]]


def generate_customers(n_customers: int, rng: np.random.Generator) -> CustomerProfiles:
    """Draw customer locations U(0,100), mean amount U(5,100) and tx/day rate U(0,4)."""
    x = rng.uniform(0, 100, size=n_customers)
    y = rng.uniform(0, 100, size=n_customers)
    mean_amount = rng.uniform(5, 100, size=n_customers)
    mean_nb_tx_per_day = rng.uniform(0, 4, size=n_customers)
    return CustomerProfiles(x, y, mean_amount, mean_amount / 2, mean_nb_tx_per_day)


def generate_terminals(n_terminals: int, rng: np.random.Generator) -> TerminalProfiles:
    """Draw terminal locations U(0,100)."""
    x = rng.uniform(0, 100, size=n_terminals)
    y = rng.uniform(0, 100, size=n_terminals)
    return TerminalProfiles(x, y)


def available_terminals(
    customers: CustomerProfiles, terminals: TerminalProfiles, radius: float
) -> AvailableTerminals:
    """Terminals strictly within Euclidean distance `radius` of each customer (chunked)."""
    n_customers, n_terminals = len(customers), len(terminals)
    chunk = max(1, _DISTANCE_CHUNK_ELEMENTS // max(1, n_terminals))
    counts = np.zeros(n_customers, dtype=np.int64)
    parts: list[np.ndarray] = []
    for lo in range(0, n_customers, chunk):
        hi = min(lo + chunk, n_customers)
        dx = customers.x[lo:hi, None] - terminals.x[None, :]
        dy = customers.y[lo:hi, None] - terminals.y[None, :]
        rows, cols = np.nonzero(np.sqrt(dx * dx + dy * dy) < radius)
        counts[lo:hi] = np.bincount(rows, minlength=hi - lo)
        parts.append(cols.astype(np.int64))
    offsets = np.zeros(n_customers + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return AvailableTerminals(offsets, flat)
