"""A takeover reader knows where its topics' partitions are once started: its first read in
a batch does not wait for metadata (aiokafka's 100 ms retry on an unknown partition), against
real Kafka."""

from __future__ import annotations

import asyncio

import pytest

from fraudstream.settings import Settings
from fraudstream.workers.takeover import TakeoverScan
from fraudstream.workers.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_a_started_reader_knows_the_partitions_of_every_topic_it_reads(
        settings: Settings) -> None:
    ensure_topics(settings)

    async def run() -> tuple[set[int] | None, set[int] | None, set[int] | None, int]:
        scan = TakeoverScan(settings, [settings.topic_scores],
                            reads=[settings.topic_transactions])
        await scan.start()
        try:
            consumer = scan._consumer
            known = (consumer.partitions_for_topic(settings.topic_transactions),
                     consumer.partitions_for_topic(settings.topic_scores),
                     consumer.partitions_for_topic(settings.topic_labels))
            return (*known, await scan.log_start(settings.topic_transactions, 0))
        finally:
            await scan.stop()

    transactions, scores, labels, start = asyncio.run(run())
    every = set(range(settings.partitions))
    assert transactions == every and scores == every
    assert labels is None, "a topic it was not told of stays unknown (the check can fail)"
    assert start == 0


def test_a_reader_told_of_a_missing_topic_still_starts(settings: Settings) -> None:
    async def run() -> int:
        scan = TakeoverScan(settings, [], reads=[f"{settings.topic_transactions}-absent"])
        async with asyncio.timeout(30):
            await scan.start()
        try:
            ensure_topics(settings)
            return await scan.log_start(settings.topic_transactions, 1)
        finally:
            await scan.stop()

    assert asyncio.run(run()) == 0
