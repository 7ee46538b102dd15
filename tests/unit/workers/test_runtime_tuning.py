"""The worker's interpreter settings: switch interval, frozen heap, rarer young collections and
measured collector pauses."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from fraudstream.monitoring.metrics import WorkerMetrics
from fraudstream.workers.runtime_tuning import GEN0_THRESHOLD, SWITCH_INTERVAL_S, tune_runtime


@pytest.fixture
def restored() -> Iterator[None]:
    """Put back what ``tune_runtime`` changes process-wide, for the tests that follow."""
    interval, thresholds, callbacks = sys.getswitchinterval(), gc.get_threshold(), \
        list(gc.callbacks)
    yield
    sys.setswitchinterval(interval)
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks
    gc.unfreeze()


def _pauses(metrics: WorkerMetrics, generation: str) -> float:
    value = metrics.registry.get_sample_value("fraudstream_gc_pause_seconds_count",
                                              {"generation": generation})
    return value or 0.0


def test_tune_runtime_sets_interval_thresholds_and_freezes(restored: None) -> None:
    assert sys.getswitchinterval() != SWITCH_INTERVAL_S  # CPython's 5 ms before
    tune_runtime()

    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
    assert gc.get_freeze_count() > 1000  # this test process's modules at least


def test_every_collection_is_observed_by_generation(restored: None) -> None:
    metrics = WorkerMetrics.create(CollectorRegistry())
    tune_runtime(metrics.gc_pause)
    assert _pauses(metrics, "2") == 0.0  # the collection before the freeze is not counted

    gc.collect(0)
    gc.collect()

    assert _pauses(metrics, "0") == 1.0
    assert _pauses(metrics, "2") == 1.0
    total = metrics.registry.get_sample_value("fraudstream_gc_pause_seconds_sum",
                                              {"generation": "2"})
    assert total is not None and total > 0.0
