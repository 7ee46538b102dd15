"""A group whose committed offsets are past the end of its partitions (the topics were created
again while the group kept its offsets): the worker starts them from their first record
instead of waiting, silently, for offsets the new topics have not reached. That holds for
every topic the group reads: the transactions, the labels and the label path's own
merchant-labels topic (without which every label was dropped at its second hop)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from kafka.structs import OffsetAndMetadata, TopicPartition

from fraudstream import kafka_clients
from fraudstream.chaos.worker_metrics import sample_value, scrape
from fraudstream.feeds import outgoing
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.workers.topics import TopicSpec, ensure_topics, merchant_labels_topic
from tests.conftest import wait_until
from tests.integration.test_label_crash import applied
from tests.integration.test_scoring_pipeline import run_through
from tests.stack_fixtures import running_pool

pytestmark = pytest.mark.integration

#: The old incarnation's offsets: far past anything the test writes.
STALE = 50_000


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_offsets_past_the_end_start_from_the_first_record_and_lose_nothing(
        settings: Settings, guarantee: str) -> None:
    # Under at least once Faust reads the starts and commits; under exactly once the worker
    # reads them after its fence and commits in its transactions: each has its own path.
    settings = dataclasses.replace(settings, processing_guarantee=guarantee)
    merchant_labels = merchant_labels_topic(settings)
    ensure_topics(settings, [TopicSpec(merchant_labels, settings.partitions,
                                       settings.replication_factor, {})])
    committer = kafka_clients.sync_consumer(settings, group_id=settings.app_id,
                                            enable_auto_commit=False)
    read = (settings.topic_transactions, settings.topic_labels, merchant_labels)
    try:
        tps = [TopicPartition(t, p) for t in read for p in range(settings.partitions)]
        committer.assign(tps)
        committer.commit({tp: OffsetAndMetadata(STALE, "", -1) for tp in tps})
    finally:
        committer.close()
    ds = simulate(SimulationConfig(n_customers=60, n_terminals=120, nb_days=3, seed=21,
                                   id_prefix="pe"))
    records = list(outgoing(ds, 0, 300, with_labels=True))
    with running_pool(settings, 1) as pool:
        scores, dlq = asyncio.run(run_through(settings, records, len(records), timeout=60))
        w = pool.workers[0]
        # Every label through both hops into its merchant's state.
        wait_until(lambda: applied(w.port) >= len(records), 60,
                   "the labels did not all reach the merchant states")
        lines = scrape(f"http://{w.settings.bind_host}:{w.port}", timeout=5)
    assert len(scores) + len(dlq) == len(records), (len(scores), len(dlq))
    assert len({s["transaction_id"] for s in scores}) == len(scores)
    assert sample_value(lines, "fraudstream_offsets_past_end_total") == \
        len(read) * settings.partitions
