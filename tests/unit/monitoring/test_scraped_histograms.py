"""Quantiles of histograms read from /metrics pages, computed as Prometheus's
histogram_quantile does (the bucket holding the rank, linear inside it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from fraudstream.monitoring.scraped_histograms import bucket_counts, quantile

COUNTS = {0.01: 50.0, 0.02: 90.0, 0.05: 100.0, math.inf: 100.0}


@pytest.mark.parametrize(("q", "expected"), [
    (0.5, 0.01),                            # rank 50: the top of the first bucket
    (0.25, 0.005),                          # rank 25: halfway up the first, from 0
    (0.7, 0.01 + 0.01 * (70 - 50) / 40),    # rank 70: 20 of the second bucket's 40
    (0.99, 0.02 + 0.03 * (99 - 90) / 10),   # rank 99: 9 of the third bucket's 10
])
def test_the_rank_is_interpolated_inside_its_bucket(q: float, expected: float) -> None:
    assert quantile(q, COUNTS) == pytest.approx(expected)


def test_a_rank_in_the_open_bucket_gives_the_highest_finite_bound() -> None:
    assert quantile(0.99, {0.01: 10.0, 0.05: 90.0, math.inf: 100.0}) == 0.05


def test_nothing_observed_has_no_quantile() -> None:
    assert quantile(0.5, {}) is None
    assert quantile(0.5, {0.01: 0.0, math.inf: 0.0}) is None
    with pytest.raises(ValueError):
        quantile(1.5, COUNTS)


def page(values: list[float], labels: list[str]) -> str:
    registry = CollectorRegistry()
    h = Histogram("fraudstream_test_seconds", "a test histogram", ["path"], registry=registry,
                  buckets=[i / 1000 for i in range(1, 201)])
    for value, label in zip(values, labels, strict=True):
        h.labels(label).observe(value)
    return generate_latest(registry).decode()


def test_pages_and_label_sets_are_summed_and_match_the_samples_to_a_bucket() -> None:
    # Two workers, each with two label sets: what a dashboard would show over all of them.
    rng = np.random.default_rng(3)
    samples = rng.gamma(2.0, 0.015, size=4000).clip(max=0.199)
    halves = np.array_split(samples, 2)
    pages = [page(list(half), ["a" if i % 2 else "b" for i in range(len(half))])
             for half in halves]
    counts = bucket_counts(pages, "fraudstream_test_seconds")
    assert counts[math.inf] == 4000
    for q in (0.5, 0.9, 0.99):
        assert quantile(q, counts) == pytest.approx(np.quantile(samples, q), abs=0.001)


def test_other_metrics_on_the_page_are_not_counted() -> None:
    text = page([0.004], ["a"])
    assert bucket_counts([text], "fraudstream_other_seconds") == {}
