"""Distribution drift statistics between a reference histogram and a live one (pure functions).

Both inputs are histograms over the same bins (counts or proportions; they are normalised
here). Empty bins get a small ``epsilon`` share so the logarithms stay finite: a live bin that
the reference never saw then counts as a large, but bounded, shift.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Share given to an empty bin before renormalising (the usual choice for PSI).
EPSILON = 1e-4

#: Conventional PSI reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25


def _shares(hist: Sequence[float] | np.ndarray, epsilon: float) -> np.ndarray:
    """``hist`` normalised to sum to 1, with every empty bin raised to ``epsilon``."""
    h = np.asarray(hist, dtype=np.float64)
    total = h.sum()
    if total <= 0:
        raise ValueError("a histogram with no mass has no distribution")
    p = np.maximum(h / total, epsilon)
    return p / p.sum()


def population_stability_index(reference: Sequence[float] | np.ndarray,
                               live: Sequence[float] | np.ndarray,
                               epsilon: float = EPSILON) -> float:
    """PSI = sum over bins of (live - ref) * ln(live / ref); 0 when the shares are equal."""
    ref, cur = _shares(reference, epsilon), _shares(live, epsilon)
    if ref.shape != cur.shape:
        raise ValueError(f"histograms differ in bins: {ref.shape[0]} vs {cur.shape[0]}")
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def jensen_shannon_divergence(reference: Sequence[float] | np.ndarray,
                              live: Sequence[float] | np.ndarray,
                              epsilon: float = EPSILON) -> float:
    """Jensen-Shannon divergence in bits (base-2 logs): 0 for equal shares, at most 1."""
    ref, cur = _shares(reference, epsilon), _shares(live, epsilon)
    if ref.shape != cur.shape:
        raise ValueError(f"histograms differ in bins: {ref.shape[0]} vs {cur.shape[0]}")
    mid = (ref + cur) / 2
    return float(0.5 * _kl_bits(ref, mid) + 0.5 * _kl_bits(cur, mid))


def _kl_bits(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in bits, with 0 log 0 = 0 (q > 0 wherever p > 0 here)."""
    nz = p > 0
    return float(np.sum(p[nz] * np.log2(p[nz] / q[nz])))


METHODS = {"psi": population_stability_index, "js": jensen_shannon_divergence}
