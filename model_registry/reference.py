"""Reference distributions a model version carries, for drift detection to compare against.

Each feature (and the score) is summarised as quantile bin edges over the validation data plus
the share of rows in each bin. Edges are interior cut points: bin ``i`` holds values ``v`` with
``edges[i-1] < v <= edges[i]`` (first bin open below, last open above), so live values far out
of range still land in a bin.

The block also carries a PSI threshold per histogram (``drift_thresholds``), taken from the
data's own variability: the validation rows (in time order) are cut into slices of
``slice_rows`` consecutive rows (the size of a live drift window; each starting half a slice
after the previous one), and each slice is compared with the whole.
A feature whose slices already differ that much from each other in a calm period would alert
on every window at the conventional 0.25; its threshold is ``THRESHOLD_MARGIN`` times the
largest slice PSI, never below ``PSI_MAJOR``. Manifests written before this carry no
thresholds; the monitor then uses ``PSI_MAJOR``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fraudstream.monitoring.drift import PSI_MAJOR, population_stability_index

DEFAULT_BINS = 10
#: Rows per slice when measuring the reference data's own variability (the size of the live
#: drift window a chaos run uses; a larger live window has less sampling noise, so the
#: threshold is on the safe side for it).
DRIFT_SLICE_ROWS = 2000
#: How far above the calmest data's largest slice-to-whole PSI an alert needs to be.
THRESHOLD_MARGIN = 2.0


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


def slice_threshold(values: np.ndarray, hist: dict[str, list[float]], slice_rows: int,
                    margin: float = THRESHOLD_MARGIN) -> float | None:
    """PSI threshold for one histogram from its slices of ``slice_rows`` consecutive values.

    Slices start every ``slice_rows // 2`` values (half-overlapping, as a sliding live window
    moves), so 1.5 windows' worth of rows already give two. ``margin`` times the largest PSI of
    a slice against the whole, at least ``PSI_MAJOR``; None when fewer than two slices fit.
    """
    values = np.asarray(values, dtype=np.float64)
    stride = max(slice_rows // 2, 1)
    starts = range(0, len(values) - slice_rows + 1, stride)
    if len(starts) < 2:
        return None
    if not hist["edges"]:
        return PSI_MAJOR  # one bin: no shift can be measured, the default is as good as any
    worst = 0.0
    for start in starts:
        part = values[start:start + slice_rows]
        part = part[np.isfinite(part)]
        if part.size:
            worst = max(worst, population_stability_index(
                hist["proportions"], bin_counts(part, hist["edges"])))
    return max(PSI_MAJOR, margin * worst)


def build_reference(X: np.ndarray, feature_names: Sequence[str], scores: np.ndarray,
                    bins: int = DEFAULT_BINS,
                    slice_rows: int = DRIFT_SLICE_ROWS) -> dict[str, Any]:
    """The ``reference`` block of a model manifest: per-feature and score histograms, and a
    PSI threshold per histogram where the rows (in time order) give two slices or more."""
    features = {name: histogram_reference(X[:, i], bins) for i, name in enumerate(feature_names)}
    score = histogram_reference(scores, bins)
    thresholds: dict[str, float] = {}
    for i, name in enumerate(feature_names):
        t = slice_threshold(X[:, i], features[name], slice_rows)
        if t is not None:
            thresholds[name] = t
    t = slice_threshold(scores, score, slice_rows)
    if t is not None:
        thresholds["score"] = t
    block: dict[str, Any] = {"bins": bins, "features": features, "score": score}
    if thresholds:
        block["drift_thresholds"] = thresholds
        block["drift_threshold_slice_rows"] = slice_rows
    return block
