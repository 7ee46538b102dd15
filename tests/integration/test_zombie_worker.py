"""A worker that does not know it is dead cannot write: the zombie test, against real Kafka.

Two workers share the input; nobody supervises them. Worker 0 is frozen (SIGSTOP) in the
middle of a batch (its model is slowed to two seconds per batch through the loopback chaos
hook, so a batch is always under way) for longer than its session: the group gives
its partitions to worker 1, which scores from the last committed offsets. Then worker 0
resumes and finishes the batch it was in. Nobody killed it.

Under ``exactly_once`` worker 1's start of each partition's transactional id fenced worker
0: its transaction is aborted, its writes fail, and a read-committed reader sees every input
record decided exactly once. The control, ``at_least_once``, runs the same sequence and must
show the zombie's second decisions: that is what makes the first case a test that can fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import threading
import time
from collections import Counter

import orjson
import pytest

from fraudstream.chaos.faults import wait_for_a_fresh_batch
from fraudstream.chaos.worker_metrics import post_chaos_hook, scrape, summed
from fraudstream.feeds import outgoing
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.streaming import TopicReader, new_producer, produce_paced
from tests.conftest import partitions_of, wait_until
from tests.stack_fixtures import running_pool

pytestmark = pytest.mark.integration

RATE = 150.0
#: Longer than the workers' 6 s session: the group moves worker 0's partitions.
FROZEN_S = 12.0
MODEL_DELAY_S = 2.0


def metric(port: int, name: str) -> float:
    return summed(scrape(f"http://127.0.0.1:{port}", timeout=5.0), name)


async def outputs(settings: Settings, expected: int, timeout: float = 120.0
                  ) -> list[tuple[int, int]]:
    """(partition, offset) of the input named by every committed score and dead letter,
    read until ``expected`` are in and nothing more arrives for a few seconds."""
    named: list[tuple[int, int]] = []
    async with TopicReader(settings, [settings.topic_scores, settings.topic_dlq]) as reader:
        deadline, quiet_since = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            got = await reader.poll(0.5)
            for _topic, _key, value, _ts in got:
                body = orjson.loads(value or b"{}")
                named.append((int(body["partition"]), int(body["offset"])))
            if got:
                quiet_since = time.monotonic()
            elif len(set(named)) >= expected and time.monotonic() - quiet_since > 5:
                break
    return named


def missing_ranges(settings: Settings, named: set[tuple[int, int]]
                   ) -> list[tuple[int, int, int]]:
    """(partition, first offset, last offset) of each run of input records without output."""
    from fraudstream import kafka_clients

    consumer = kafka_clients.sync_consumer(settings)
    try:
        from kafka import TopicPartition

        tps = [TopicPartition(settings.topic_transactions, p) for p in range(settings.partitions)]
        ends = consumer.end_offsets(tps)
    finally:
        consumer.close()
    runs: list[tuple[int, int, int]] = []
    for tp, end in sorted(ends.items()):
        start = None
        for offset in range(end + 1):
            absent = offset < end and (tp.partition, offset) not in named
            if absent and start is None:
                start = offset
            elif not absent and start is not None:
                runs.append((tp.partition, start, offset - 1))
                start = None
    return runs


@pytest.mark.parametrize("guarantee", [
    "exactly_once", pytest.param("at_least_once", marks=pytest.mark.control)])
def test_a_frozen_worker_that_resumes_cannot_decide_twice(settings: Settings,
                                                         guarantee: str) -> None:
    s = dataclasses.replace(settings, processing_guarantee=guarantee, chaos_hooks=1,
                            model_timeout_s=5.0)
    ds = simulate(SimulationConfig(n_customers=300, n_terminals=400, nb_days=10, seed=5,
                                   id_prefix=f"z{guarantee[:2]}"))
    records = list(outgoing(ds, 0, 4000, with_labels=False))
    stop = threading.Event()
    sent: list[int] = []

    def produce() -> None:
        async def run() -> None:
            producer = new_producer(s)
            await producer.start()
            try:
                stats = await produce_paced(producer, iter(records), topic=s.topic_transactions,
                                            labels_topic=s.topic_labels, rate=RATE,
                                            label_delay_s=0, should_stop=stop.is_set)
                sent.append(stats.sent)
            finally:
                await producer.stop()

        asyncio.run(run())

    with running_pool(s, 2) as pool:
        zombie, heir = pool.workers
        zombie_url = f"http://127.0.0.1:{zombie.port}"
        wait_until(lambda: bool(partitions_of(zombie.port) and partitions_of(heir.port)), 60,
                   "the two workers did not share the partitions")
        post_chaos_hook(zombie_url, "/chaos/model", {"delay_s": MODEL_DELAY_S})
        traffic = threading.Thread(target=produce, daemon=True)
        traffic.start()
        wait_until(lambda: metric(zombie.port, "fraudstream_transactions_scored_total") > 0, 60,
                   "worker 0 scored nothing")
        # Frozen in the middle of a batch, so that on waking it tries to write.
        assert wait_for_a_fresh_batch(zombie_url, 30), \
            "worker 0 started no batch"
        zombie.signal(signal.SIGSTOP)
        try:
            wait_until(lambda: len(partitions_of(heir.port)) == s.partitions, FROZEN_S + 30,
                       "worker 1 did not take the frozen worker's partitions")
            time.sleep(max(FROZEN_S - 8, 1))
        finally:
            zombie.signal(signal.SIGCONT)
        # The zombie finishes its batch and rejoins; the traffic runs on for a while.
        time.sleep(8)
        post_chaos_hook(zombie_url, "/chaos/model", {"delay_s": 0})
        stop.set()
        traffic.join(60)
        assert sent, "the producer failed"
        named = asyncio.run(outputs(s, sent[0]))
        fenced = metric(zombie.port, "fraudstream_fenced_records_total")

    counts = Counter(named)
    twice = {k: n for k, n in counts.items() if n > 1}
    missing = missing_ranges(s, set(counts))
    print(f"\nZOMBIE {guarantee}: sent {sent[0]}, outputs {len(named)}, distinct "
          f"{len(counts)}, decided twice {len(twice)}, zombie's fenced records {fenced:.0f}")
    assert not missing, f"input records without an output (partition, first, last): {missing}"
    assert len(counts) == sent[0]
    if guarantee == "exactly_once":
        assert not twice, f"decided twice: {sorted(twice)[:10]}"
        assert fenced > 0, "the zombie never tried to write: the test did not test the fence"
    else:
        assert twice, "without transactions the zombie's batch should have been decided twice"
