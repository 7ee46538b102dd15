"""``observe_many`` counts a batch of values exactly as ``Histogram.observe`` one by one does
(prometheus_client's own collection is the reference)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from fraudstream.monitoring.metrics import LATENCY_BUCKETS, observe_many


def samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    [metric] = histogram.collect()
    return {(s.name, s.labels.get("le", "")): s.value for s in metric.samples
            if not s.name.endswith("_created")}


def histogram(name: str) -> Histogram:
    return Histogram(name, "test", buckets=LATENCY_BUCKETS, registry=CollectorRegistry())


def test_the_same_samples_as_observe_one_by_one() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([
        rng.exponential(0.05, 5_000),
        np.asarray(LATENCY_BUCKETS),  # exactly on each bound: that bucket, as observe counts
        np.asarray([0.0, 1e6, 0.0020000001, 0.0019999999]),
    ])
    one_by_one, batched = histogram("one"), histogram("many")
    for value in values.tolist():
        one_by_one.observe(value)
    observe_many(batched, values[:2_000])
    observe_many(batched, values[2_000:])
    expected = {(name.replace("one", "many"), le): v
                for (name, le), v in samples(one_by_one).items()}
    got = samples(batched)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key


def test_non_finite_and_empty_inputs_change_nothing() -> None:
    batched = histogram("h")
    before = samples(batched)
    observe_many(batched, np.asarray([]))
    observe_many(batched, np.asarray([np.nan, np.inf, -np.inf]))
    assert samples(batched) == before


class WithoutInternals:
    """A histogram whose prometheus_client internals are not the expected ones."""

    def __init__(self) -> None:
        self.observed: list[float] = []

    def observe(self, value: float) -> None:
        self.observed.append(value)


def test_falls_back_to_observe_when_the_internals_differ() -> None:
    fake: Any = WithoutInternals()
    observe_many(fake, np.asarray([0.1, np.nan, 0.3]))
    assert fake.observed == [0.1, 0.3]
