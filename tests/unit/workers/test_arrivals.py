"""Each record's time before its batch, split where Faust handed it to the event loop."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram

from fraudstream.monitoring.metrics import LATENCY_BUCKETS
from fraudstream.workers.arrivals import observe_arrivals


def event(timestamp: float | None, time_in: float | None) -> Any:
    return SimpleNamespace(message=SimpleNamespace(timestamp=timestamp, time_in=time_in))


def histogram() -> Histogram:
    return Histogram("h", "test", buckets=LATENCY_BUCKETS, registry=CollectorRegistry())


def observed(h: Histogram) -> tuple[float, float]:
    [metric] = h.collect()
    values = {s.name: s.value for s in metric.samples}
    return values["h_count"], values["h_sum"]


def test_arrival_age_and_batch_wait_of_each_record() -> None:
    age, wait = histogram(), histogram()
    # Now: wall 1000.0, monotonic 50.0. The first record was produced at 999.90 and handed
    # over at monotonic 49.97 (wall 999.97): 70 ms to arrive, then 30 ms waiting.
    events = [event(999.90, 49.97), event(999.95, 49.99),
              event(None, 49.99),   # no timestamp: left out
              event(999.95, None)]  # not stamped by Faust's monitor: left out
    observe_arrivals(events, age, wait, wall=lambda: 1000.0, mono=lambda: 50.0)
    assert observed(wait) == (2, pytest.approx(0.03 + 0.01))
    assert observed(age) == (2, pytest.approx(0.07 + 0.04))


def test_clocks_that_disagree_never_give_negative_times() -> None:
    age, wait = histogram(), histogram()
    # A producer's clock ahead of the worker's, and a stamp taken after "now".
    observe_arrivals([event(1000.5, 50.01)], age, wait, wall=lambda: 1000.0, mono=lambda: 50.0)
    assert observed(wait) == (1, 0.0)
    assert observed(age) == (1, 0.0)


def test_a_batch_with_no_stamped_record_observes_nothing() -> None:
    age, wait = histogram(), histogram()
    observe_arrivals([event(None, None)], age, wait)
    assert observed(wait) == (0, 0.0) and observed(age) == (0, 0.0)
