"""Quantiles of histograms read from ``/metrics`` pages, as Prometheus's ``histogram_quantile``
computes them, without a Prometheus: the benchmark reads the workers' own histograms at the
end of a run.

The estimate is the one a dashboard shows: the bucket that holds the rank, and a linear
interpolation inside it (from 0 for the first bucket). It is exact to the bucket, no finer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families


def bucket_counts(pages: Iterable[str], name: str) -> dict[float, float]:
    """Cumulative counts per upper bound (``le``) of histogram ``name`` (without its
    ``_bucket`` suffix), summed over its label sets and over every page."""
    counts: dict[float, float] = {}
    for page in pages:
        for family in text_string_to_metric_families(page):
            if family.name != name or family.type != "histogram":
                continue
            for sample in family.samples:
                if sample.name == f"{name}_bucket":
                    le = float(sample.labels["le"])
                    counts[le] = counts.get(le, 0.0) + sample.value
    return counts


def quantile(q: float, counts: dict[float, float]) -> float | None:
    """The ``q`` quantile (0..1) of cumulative ``counts``; None when nothing was observed.
    A rank in the open-ended bucket gives the highest finite bound, as Prometheus does."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    bounds = sorted(counts)
    total = counts[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = counts[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
