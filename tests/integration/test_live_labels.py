"""Labels reach the worker that scored their card, which matches them to its decisions."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fraudstream.feeds import outgoing
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.streaming import new_producer, produce_paced
from fraudstream.workers.pool import WorkerPool
from tests.conftest import wait_until
from tests.stack_fixtures import running_pool

pytestmark = pytest.mark.integration
COUNT = 800


@pytest.fixture
def two_workers(settings: Settings) -> Iterator[WorkerPool]:
    with running_pool(settings, 2, log_lines=20) as pool:
        yield pool


def samples(pool: WorkerPool, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``name`` samples summed over the pool's workers, by label set."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for w in pool.workers:
        url = f"http://{pool.settings.bind_host}:{w.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name:
                    key = tuple(sorted(s.labels.items()))
                    out[key] = out.get(key, 0.0) + s.value
    return out


async def send(settings: Settings, what: str) -> None:
    """Send the transactions, or (``what="labels"``) their labels, at 400/s."""
    from fraudstream.streaming import Outgoing

    ds = simulate(SimulationConfig(n_customers=200, n_terminals=400, nb_days=10, seed=11,
                                   id_prefix="labels"))
    records = list(outgoing(ds, 0, COUNT))
    topic = settings.topic_transactions
    if what == "labels":
        records = [Outgoing(r.key, r.label or b"") for r in records]
        topic = settings.topic_labels
    else:
        records = [Outgoing(r.key, r.value) for r in records]
    producer = new_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await produce_paced(producer, records, topic=topic, labels_topic=settings.topic_labels,
                            rate=400, label_delay_s=0)
    finally:
        await producer.stop()


def test_every_label_is_matched_by_the_worker_that_scored_its_card(
        two_workers: WorkerPool) -> None:
    # Labels arrive after their decisions, as chargebacks do (days later in real life): a
    # label that overtook its transaction would be unmatched by design, not by mistake.
    asyncio.run(send(two_workers.settings, "transactions"))
    wait_until(lambda: samples(two_workers, "fraudstream_transactions_scored_total").get(
        (), 0.0) >= COUNT, 120, "the transactions were not all scored")
    asyncio.run(send(two_workers.settings, "labels"))

    def matched() -> float:
        return samples(two_workers, "fraudstream_labels_matched_total").get(
            (("outcome", "matched"),), 0.0)

    try:
        wait_until(lambda: matched() >= COUNT, 120, "not every label was matched to its decision")
    finally:
        counts = samples(two_workers, "fraudstream_labels_matched_total")
        print("labels matched:", counts, "scored:",
              samples(two_workers, "fraudstream_transactions_scored_total"))
    assert counts.get((("outcome", "unmatched"),), 0.0) == 0
    assert counts.get((("outcome", "malformed"),), 0.0) == 0
    outcomes = samples(two_workers, "fraudstream_live_outcomes_total")
    assert sum(outcomes.values()) == COUNT
    # Both workers took part: each scored, and matched labels for, its own partitions.
    per_worker = [samples(WorkerPool(two_workers.settings, 1, [w]),
                          "fraudstream_labels_matched_total") for w in two_workers.workers]
    assert all(c.get((("outcome", "matched"),), 0.0) > 0 for c in per_worker)
