"""A real Prometheus, configured by the launcher, scrapes a real worker's /metrics."""

from __future__ import annotations

import asyncio
import functools
import json
import urllib.parse
import urllib.request

import pytest

from fraudstream.deploy.local import LocalStack
from fraudstream.feeds import outgoing
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.streaming import new_producer, produce_paced
from fraudstream.workers.pool import WorkerPool
from tests.conftest import wait_until

pytestmark = pytest.mark.integration


def query(stack: LocalStack, promql: str) -> float:
    url = (f"http://127.0.0.1:{stack.config.prometheus_port}/api/v1/query?"
           + urllib.parse.urlencode({"query": promql}))
    with urllib.request.urlopen(url, timeout=5) as resp:
        result = json.loads(resp.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def at_least(stack: LocalStack, promql: str, value: float) -> bool:
    return query(stack, promql) >= value


async def send(settings: Settings, count: int) -> None:
    ds = simulate(SimulationConfig(n_customers=100, n_terminals=200, nb_days=10, seed=4,
                                   id_prefix="prom"))
    producer = new_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await produce_paced(producer, outgoing(ds, 0, count, with_labels=False),
                            topic=settings.topic_transactions, labels_topic=settings.topic_labels,
                            rate=0, label_delay_s=0)
    finally:
        await producer.stop()


def test_worker_metrics_reach_prometheus(stack: LocalStack, settings: Settings,
                                         one_worker: WorkerPool) -> None:
    asyncio.run(send(settings, 200))
    app = settings.app_id
    scored = f'sum(fraudstream_transactions_scored_total{{app="{app}"}})'
    try:
        wait_until(lambda: query(stack, scored) >= 200, 60,
                   "Prometheus did not see the worker's scored transactions")
    except AssertionError:
        print("seen:", query(stack, scored), query(stack, "fraudstream_transactions_scored_total"),
              query(stack, "up"))
        raise
    assert query(stack, f'sum(fraudstream_worker_ready{{app="{app}"}})') == 1
    assert query(stack, f'count(fraudstream_end_to_end_latency_seconds_bucket{{app="{app}"}})') > 0
    # Faust's monitor stamped every record's arrival: its time is split before its batch.
    for split in ("record_arrival_age_seconds", "batch_wait_seconds"):
        observed = f'sum(fraudstream_{split}_count{{app="{app}"}})'
        wait_until(functools.partial(at_least, stack, observed, 200), 30,
                   f"Prometheus did not see fraudstream_{split} of the scored transactions")
