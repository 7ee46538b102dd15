"""Reference distributions a model version carries, for drift detection to compare against.

Each feature (and the score) is summarised as quantile bin edges over the validation data plus
the share of rows in each bin. Edges are interior cut points: bin ``i`` holds values ``v`` with
``edges[i-1] < v <= edges[i]`` (first bin open below, last open above), so live values far out
of range still land in a bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_BINS = 10


def histogram_reference(values: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, list[float]]:
    """Quantile edges (deduplicated) and the proportion of ``values`` in each resulting bin."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"edges": [], "proportions": [1.0]}
    cuts = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = bin_counts(values, cuts.tolist())
    return {"edges": cuts.tolist(), "proportions": (counts / counts.sum()).tolist()}


def bin_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """How many ``values`` fall in each bin defined by ``edges`` (len(edges) + 1 bins)."""
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64),
                          np.asarray(values, dtype=np.float64), side="left")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)


def build_reference(X: np.ndarray, feature_names: Sequence[str], scores: np.ndarray,
                    bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The ``reference`` block of a model manifest: per-feature and score histograms."""
    return {
        "bins": bins,
        "features": {name: histogram_reference(X[:, i], bins)
                     for i, name in enumerate(feature_names)},
        "score": histogram_reference(scores, bins),
    }
