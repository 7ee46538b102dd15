"""The ceiling: the workers' work and durability in a plain aiokafka loop, no Faust.

Per transaction batch: the same validation, features, model and drift windows
(``ScoringProcessor``), the card state written to a changelog topic (one record per card per
batch, acknowledged by all replicas before the scores, as the workers' ``ChangelogTable`` does
at least once). Per label batch: each label parsed as the workers parse it, added to its
merchant's state, and the state of each merchant it touched written to a merchants changelog,
which is what the workers' label path ends in. One process owns every merchant here, so labels
need no routing hop and no global table: this is what the work costs without the machinery of
distribution. Offsets are committed after the outputs (at least once): the durability of the
workers' ``at_least_once`` mode; the cost of exactly once is the ``2`` / ``2-alo`` ratio.

The loop can run as one of ``n`` processes (``share``): process ``i`` reads the partitions
``p`` with ``p % n == i`` of both topics, assigned (no group, no rebalance), and keeps the
merchant states of the labels it reads: the same work per record, spread over ``n`` processes
as the ``n`` workers spread theirs (without the routing that gives each merchant one owner).
Two workers on two cores are measured against two such processes, not against one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import orjson

from fraudstream import kafka_clients
from fraudstream.bench.harness import READY_LINE
from fraudstream.monitoring.drift_window import DriftMonitor
from fraudstream.monitoring.metrics import WorkerMetrics
from fraudstream.settings import Settings
from fraudstream.workers.card_store import PartitionedStore
from fraudstream.workers.merchant_labels import MerchantRecord, merchant_label
from fraudstream.workers.merchant_states import MerchantStates
from fraudstream.workers.output import KafkaBatchSink, Sink
from fraudstream.workers.processor import RawRecord, ScoringProcessor, Topics
from fraudstream.workers.runtime_tuning import tune_runtime
from fraudstream.workers.scoring import Scorer, limit_model_threads
from fraudstream.workers.state_tables import ChangelogTable
from fraudstream.workers.topics import (
    card_changelog,
    card_changelog_spec,
    ensure_topics,
    merchants_changelog_spec,
)

if TYPE_CHECKING:
    from aiokafka import TopicPartition


class DictStore:
    """A ``PartitionedStore`` in a dict (the loop restores nothing: it runs once)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get_in(self, partition: int, key: bytes) -> bytes | None:
        return self.data.get(key)

    def write_batch(self, partition: int, items: Sequence[tuple[bytes, bytes]],
                    changelog_offset: int | None) -> None:
        self.data.update(items)

    def delete_batch(self, partition: int, keys: Sequence[bytes],
                     changelog_offset: int | None) -> None:
        for key in keys:
            self.data.pop(key, None)

    def scan(self, partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        raise NotImplementedError("the raw loop expires no cards")


class LocalChangelogTable(ChangelogTable):
    """The workers' card table logic over a dict instead of a Faust table."""

    def __init__(self, topic: str, sink: Sink) -> None:
        super().__init__(None, sink)
        self._store = DictStore()
        self._topic = topic

    @property
    def store(self) -> PartitionedStore:
        return self._store

    @property
    def topic(self) -> str:
        return self._topic


class RawLoop:
    """What the loop does with one batch of one partition; no Kafka consumer inside."""

    def __init__(self, settings: Settings, scorer: Scorer, sink: Sink) -> None:
        self.settings = settings
        self.sink = sink
        #: Merchant states as the workers' merchants table holds them (wire forms).
        self.merchants: dict[bytes, object] = {}
        self.merchants_topic = merchants_changelog_spec(settings).name
        metrics = WorkerMetrics.create()
        drift = DriftMonitor.from_settings(metrics, settings)
        self.processor = ScoringProcessor(
            scorer=scorer, sink=sink,
            cards=LocalChangelogTable(card_changelog(settings), sink),
            merchants=MerchantStates(self.merchants),
            topics=Topics(settings.topic_scores, settings.topic_dlq),
            metrics=metrics, drift=drift, worker_name="raw-loop",
            label_delay_days=settings.label_delay_days,
            max_message_bytes=settings.max_message_bytes,
            max_clock_skew_s=settings.max_clock_skew_s)
        self.labels_applied = 0
        self.labels_rejected = 0

    async def handle(self, batch: list[RawRecord]) -> None:
        if batch[0].topic == self.settings.topic_labels:
            await self.apply_labels(batch)
        else:
            await self.processor.process(batch)

    async def apply_labels(self, batch: list[RawRecord]) -> None:
        """Each label into its merchant's state; one changelog record per merchant touched."""
        touched: dict[bytes, MerchantRecord] = {}
        now = time.time()
        for r in batch:
            routed = merchant_label(r.value, now, self.settings.max_clock_skew_s)
            if routed is None:
                self.labels_rejected += 1
                continue
            key, body = routed
            record = touched.get(key)
            if record is None:
                record = touched[key] = MerchantRecord.from_wire(self.merchants.get(key))
            record.observe(r.partition, r.offset, body)
            self.labels_applied += 1
        wires = {key: record.to_wire() for key, record in touched.items()}
        for key, wire in wires.items():
            self.sink.add(self.merchants_topic, key, orjson.dumps(wire), 0)
        await self.sink.flush()
        self.merchants.update(wires)


def shared_partitions(partitions: Mapping[str, Iterable[int]],
                      share: tuple[int, int]) -> list[TopicPartition]:
    """The partitions (of each topic, as the cluster reports them) that process ``share[0]``
    of ``share[1]`` reads."""
    from aiokafka import TopicPartition

    index, count = share
    if not 0 <= index < count:
        raise ValueError(f"process {index} of {count}")
    return [TopicPartition(topic, p) for topic, ids in partitions.items()
            for p in sorted(ids) if p % count == index]


async def run_raw_loop(settings: Settings, scorer: Scorer, expected: int | None,
                       group: str, share: tuple[int, int] = (0, 1)) -> None:
    """Consume ``expected`` transactions and as many labels (None: until stopped) from this
    process's ``share`` of the partitions (see the module docstring), score and apply them in
    batches and produce the outputs; then return."""
    ensure_topics(settings, [card_changelog_spec(settings), merchants_changelog_spec(settings)])
    # Read committed, as the workers read (bench.harness holds a drain's records in an open
    # transaction until the contender is ready).
    consumer = kafka_clients.aio_consumer(settings, group_id=group,
                                          auto_offset_reset="earliest", enable_auto_commit=True,
                                          max_poll_records=settings.batch_size,
                                          isolation_level="read_committed")
    producer = kafka_clients.aio_producer(settings, linger_ms=5, max_batch_size=262_144,
                                          acks="all")
    await consumer.start()
    await producer.start()
    # The producer waits for the topics' metadata (the consumer's ``topics()`` does not
    # update what ``partitions_for_topic`` reads).
    topics = (settings.topic_transactions, settings.topic_labels)
    consumer.assign(shared_partitions(
        {topic: await producer.partitions_for(topic) for topic in topics}, share))
    loop = RawLoop(settings, scorer, KafkaBatchSink(producer))
    done = {settings.topic_transactions: 0, settings.topic_labels: 0}
    polled = False
    try:
        while expected is None or min(done.values()) < expected:
            batches = await consumer.getmany(timeout_ms=100, max_records=settings.batch_size)
            if not polled:
                # Its positions are set: a record sent now is read at once (bench.harness).
                print(READY_LINE.decode(), flush=True)
                polled = True
            for tp, messages in batches.items():
                await loop.handle([RawRecord(tp.topic, tp.partition, m.offset, m.key,
                                             m.value, m.timestamp) for m in messages])
                done[tp.topic] += len(messages)
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    """Entry point for running the loop as its own process:
    ``python -m fraudstream.bench.raw_loop N`` reads N transactions and N labels from every
    partition; ``python -m fraudstream.bench.raw_loop - I COUNT`` is process I of COUNT
    (its share of the partitions, until stopped)."""
    import sys

    from fraudstream.model_registry.artifact import load_verified

    limit_model_threads()
    settings = Settings.from_env()
    scorer = Scorer(load_verified(settings.model_path, settings.signing_key.encode()))
    # The workers' interpreter settings: the ceiling gets what they get.
    tune_runtime()
    expected = None if sys.argv[1] == "-" else int(sys.argv[1])
    share = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (0, 1)
    asyncio.run(run_raw_loop(settings, scorer, expected, f"{settings.app_id}-raw", share))


if __name__ == "__main__":
    main()
