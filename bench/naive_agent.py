"""The peer: a Faust agent written the common way, one event at a time.

Per event it validates, reads and writes the card's table entry, calls ``predict_proba`` on one
row and awaits one ``send``: the same work as a fraudstream worker, without batching.
Run as ``python -m bench.naive_agent`` with the FRAUDSTREAM_* environment of the bench.
"""

from __future__ import annotations

import time
from typing import Any

import faust
import numpy as np
import orjson

from features import MerchantState, compute_features
from fraudstream import kafka_clients
from fraudstream.settings import Settings
from model_registry.artifact import load_verified
from workers.card_record import CardRecord
from workers.messages import dead_letter_record, iso_now, score_record
from workers.scoring import Scorer, limit_model_threads
from workers.validation import Rejection, validate


def build(settings: Settings) -> faust.App:
    scorer = Scorer(load_verified(settings.model_path, settings.signing_key.encode()))
    app = faust.App(settings.app_id, **kafka_clients.faust_broker_settings(settings),
                    store="memory://", web_host=settings.bind_host, web_bind=settings.bind_host,
                    web_port=settings.worker_web_port, consumer_auto_offset_reset="earliest",
                    topic_partitions=settings.partitions)
    source = app.topic(settings.topic_transactions, value_serializer="raw", key_serializer="raw")
    scores = app.topic(settings.topic_scores, value_serializer="raw", key_serializer="raw")
    dlq = app.topic(settings.topic_dlq, value_serializer="raw", key_serializer="raw")
    cards = app.Table("naive-cards", default=None, key_type=bytes, value_type=bytes)

    @app.agent(source)
    async def score(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            tx = validate(msg.value, time.time(), settings.max_message_bytes)
            if isinstance(tx, Rejection):
                await dlq.send(key=msg.key, value=dead_letter_record(
                    topic=msg.topic, partition=msg.partition, offset=msg.offset,
                    payload=msg.value, error=tx.error, reason=tx.reason,
                    dead_lettered_at=iso_now(time.time())))
                continue
            key = tx.card_id.encode()
            raw = cards.get(key)
            card = CardRecord.from_wire(orjson.loads(raw) if raw else None)
            row = compute_features(tx.ts, tx.amount, card.state, MerchantState(),
                                   settings.label_delay_days)
            value = float(scorer.score(np.asarray([row]))[0])
            cards[key] = orjson.dumps(card.to_wire())
            await scores.send(key=key, value=score_record(
                transaction_id=tx.transaction_id, card_id=tx.card_id, score=value,
                decision=scorer.decide(value), model_version=scorer.version, degraded=False,
                worker="naive", scored_at=iso_now(time.time()),
                ingested_at_ms=int(msg.timestamp * 1000), reasons=[]))

    return app


def main() -> None:
    from faust.worker import Worker

    limit_model_threads()
    settings = Settings.from_env()
    app = build(settings)
    Worker(app, loglevel="warning", quiet=True, override_logging=False).execute_from_commandline()


if __name__ == "__main__":
    main()
