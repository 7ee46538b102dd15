"""The peer: a Faust agent written the common way, one event at a time.

Per transaction it validates, reads and writes the card's table entry, reads its merchant's
state, calls ``predict_proba`` on one row and awaits one ``send``; per label it updates the
merchant's state and awaits one ``send`` of it to a merchants changelog: the same work as a
fraudstream worker, without batching (merchants in a dict, since one process owns them all).
Run as ``python -m fraudstream.bench.naive_agent`` with the FRAUDSTREAM_* environment of the bench.
"""

from __future__ import annotations

import time
from typing import Any

import faust
import numpy as np
import orjson

from fraudstream import kafka_clients
from fraudstream.features import MerchantState, compute_features
from fraudstream.model_registry.artifact import load_verified
from fraudstream.settings import Settings
from fraudstream.workers.card_record import CardRecord
from fraudstream.workers.merchant_labels import MerchantRecord, merchant_label
from fraudstream.workers.messages import dead_letter_record, iso_now, score_record
from fraudstream.workers.scoring import Scorer, limit_model_threads
from fraudstream.workers.topics import ensure_topics, merchants_changelog_spec
from fraudstream.workers.validation import Rejection, validate


def build(settings: Settings) -> faust.App:
    scorer = Scorer(load_verified(settings.model_path, settings.signing_key.encode()))
    app = faust.App(settings.app_id, **kafka_clients.faust_broker_settings(settings),
                    store="memory://", web_host=settings.bind_host, web_bind=settings.bind_host,
                    web_port=settings.worker_web_port, consumer_auto_offset_reset="earliest",
                    topic_partitions=settings.partitions)
    source = app.topic(settings.topic_transactions, value_serializer="raw", key_serializer="raw")
    scores = app.topic(settings.topic_scores, value_serializer="raw", key_serializer="raw")
    dlq = app.topic(settings.topic_dlq, value_serializer="raw", key_serializer="raw")
    labels = app.topic(settings.topic_labels, value_serializer="raw", key_serializer="raw")
    merchant_changelog = app.topic(merchants_changelog_spec(settings).name,
                                   value_serializer="raw", key_serializer="raw")
    cards = app.Table("naive-cards", default=None, key_type=bytes, value_type=bytes)
    merchants: dict[bytes, MerchantRecord] = {}

    @app.agent(labels)
    async def learn(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            routed = merchant_label(msg.value, time.time(), settings.max_clock_skew_s)
            if routed is None:
                continue
            key, body = routed
            record = merchants.setdefault(key, MerchantRecord())
            record.observe(msg.partition, msg.offset, body)
            await merchant_changelog.send(key=key, value=orjson.dumps(record.to_wire()))

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
            merchant = merchants.get(tx.merchant_id.encode())
            row = compute_features(tx.ts, tx.amount, card.state,
                                   MerchantState() if merchant is None else merchant.state,
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
    ensure_topics(settings, [merchants_changelog_spec(settings)])
    app = build(settings)
    Worker(app, loglevel="warning", quiet=True, override_logging=False).execute_from_commandline()


if __name__ == "__main__":
    main()
