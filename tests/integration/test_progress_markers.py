"""The supervisor's backlog against a real broker: transaction markers past the workers'
committed offsets are no backlog; a record is."""

from __future__ import annotations

import asyncio

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from fraudstream import kafka_clients
from fraudstream.bench.harness import discard, fresh, preload
from fraudstream.settings import Settings
from fraudstream.streaming import Outgoing, new_producer
from fraudstream.workers.progress import GroupProgress
from fraudstream.workers.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_markers_after_the_last_record_are_no_backlog_and_a_record_is(
        settings: Settings) -> None:
    run = fresh(settings, "markers")
    ensure_topics(run)
    topic = run.topic_transactions
    try:
        # A transactional producer upstream: every partition ends with a commit marker.
        asyncio.run(preload(run, [Outgoing(b"C%d" % i, b"{}") for i in range(40)]))
        reader = kafka_clients.sync_consumer(run, enable_auto_commit=False,
                                             isolation_level="read_committed")
        tps = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
        ends = reader.end_offsets(tps)
        reader.close()
        assert all(end > 1 for end in ends.values()), ends
        # As the workers commit: the offset after the last record (the marker is at end - 1).
        group = kafka_clients.sync_consumer(run, group_id=run.app_id, enable_auto_commit=False)
        group.commit({tp: OffsetAndMetadata(end - 1, "", -1) for tp, end in ends.items()})
        group.close()

        progress = GroupProgress(run, run.app_id, topic)
        progress.start()
        try:
            progress.refresh(0.0)
            progress.refresh(1.0)
            assert progress.total_lag == 0
            partitions = [tp.partition for tp in tps]
            assert progress.stalled(partitions, 100.0, 20.0) == []

            async def one_more() -> None:
                producer = new_producer(run)
                await producer.start()
                try:
                    await producer.send_and_wait(topic, b"{}", key=b"late", partition=0)
                finally:
                    await producer.stop()

            asyncio.run(one_more())
            progress.refresh(2.0)
            progress.refresh(3.0)
            assert progress.partitions[0].lag == 2  # the marker and the record after it
            assert progress.stalled(partitions, 30.0, 20.0) == [0]
        finally:
            progress.stop()
    finally:
        discard(run)
