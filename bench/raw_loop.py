"""The ceiling: the same validation, features and model in a plain aiokafka loop, no Faust."""

from __future__ import annotations

import asyncio

from fraudstream import kafka_clients
from fraudstream.settings import Settings
from monitoring.metrics import WorkerMetrics
from workers.output import KafkaBatchSink
from workers.processor import RawRecord, ScoringProcessor, Topics
from workers.scoring import Scorer, limit_model_threads
from workers.state_tables import DictTable


async def run_raw_loop(settings: Settings, scorer: Scorer, expected: int,
                       group: str) -> None:
    """Consume ``expected`` records, score them in batches and produce the output; then return."""
    consumer = kafka_clients.aio_consumer(settings, settings.topic_transactions, group_id=group,
                                          auto_offset_reset="earliest", enable_auto_commit=True,
                                          max_poll_records=settings.batch_size)
    producer = kafka_clients.aio_producer(settings, linger_ms=5, max_batch_size=262_144,
                                          acks="all")
    await consumer.start()
    await producer.start()

    processor = ScoringProcessor(
        scorer=scorer, cards=DictTable(), merchants={}, sink=KafkaBatchSink(producer),
        topics=Topics(settings.topic_scores, settings.topic_dlq), metrics=WorkerMetrics.create(),
        worker_name="raw-loop", label_delay_days=settings.label_delay_days,
        max_message_bytes=settings.max_message_bytes)
    done = 0
    try:
        while done < expected:
            batches = await consumer.getmany(timeout_ms=100, max_records=settings.batch_size)
            for tp, messages in batches.items():
                await processor.process([RawRecord(tp.topic, tp.partition, m.offset, m.key,
                                                   m.value, m.timestamp) for m in messages])
                done += len(messages)
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    """Entry point for running the loop as its own process (``python -m bench.raw_loop N``)."""
    import sys

    from model_registry.artifact import load_verified

    limit_model_threads()
    settings = Settings.from_env()
    scorer = Scorer(load_verified(settings.model_path, settings.signing_key.encode()))
    asyncio.run(run_raw_loop(settings, scorer, int(sys.argv[1]), f"{settings.app_id}-raw"))


if __name__ == "__main__":
    main()
