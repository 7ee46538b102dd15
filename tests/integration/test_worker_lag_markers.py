"""A worker's own lag gauge behind a transactional producer: the commit marker after each
partition's last record is no lag (it showed 1 on every partition for good)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from fraudstream.bench.harness import preload
from fraudstream.chaos.worker_metrics import sample_value, scrape
from fraudstream.feeds import outgoing
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from tests.conftest import wait_until
from tests.stack_fixtures import running_pool

pytestmark = pytest.mark.integration


def test_a_transactional_producers_markers_are_no_lag(settings: Settings) -> None:
    settings = dataclasses.replace(settings, monitoring_interval_s=1.0)
    ds = simulate(SimulationConfig(n_customers=40, n_terminals=80, nb_days=2, seed=5,
                                   id_prefix="lm"))
    records = list(outgoing(ds, 0, 200, with_labels=False))
    with running_pool(settings, 1) as pool:
        w = pool.workers[0]
        url = f"http://{w.settings.bind_host}:{w.port}"
        # One Kafka transaction upstream: every partition ends with its commit marker.
        asyncio.run(preload(settings, records))

        def lags() -> list[float | None]:
            lines = scrape(url, timeout=5)
            return [sample_value(lines, f'fraudstream_consumer_lag{{partition="{p}"}}')
                    for p in range(settings.partitions)]

        def scored() -> float:
            return sum(float(line.rsplit(" ", 1)[1]) for line in scrape(url, timeout=5)
                       if line.startswith(("fraudstream_transactions_scored_total",
                                           "fraudstream_transactions_dead_lettered_total")))

        wait_until(lambda: scored() >= len(records), 60, "the records were not all scored")
        wait_until(lambda: lags() == [0.0] * settings.partitions, 30,
                   "the worker's lag gauge still counts the markers")
