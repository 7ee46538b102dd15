"""Produce → real Kafka → real Faust worker → scores / dead letters, every record accounted for."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
import pytest

from fraudstream.feeds import BAD_KINDS, corrupt, outgoing
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.streaming import Outgoing, TopicReader, new_producer, produce_paced
from fraudstream.workers.pool import WorkerPool

pytestmark = pytest.mark.integration


async def run_through(settings: Settings, records: list[Outgoing], expected: int,
                      timeout: float = 90.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    reader = TopicReader(settings.kafka_bootstrap, [settings.topic_scores, settings.topic_dlq],
                         from_beginning=True)
    await reader.start()
    producer = new_producer(settings.kafka_bootstrap)
    await producer.start()
    scores: list[dict[str, Any]] = []
    dlq: list[dict[str, Any]] = []
    try:
        await produce_paced(producer, records, topic=settings.topic_transactions,
                            labels_topic=settings.topic_labels, rate=0, label_delay_s=0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(scores) + len(dlq) < expected and loop.time() < deadline:
            for topic, _k, value, _ts in await reader.poll(0.5):
                out = scores if topic == settings.topic_scores else dlq
                out.append(orjson.loads(value or b""))
        # Linger a moment: anything extra (a second decision) would show up here.
        for topic, _k, value, _ts in await reader.poll(2.0):
            out = scores if topic == settings.topic_scores else dlq
            out.append(orjson.loads(value or b""))
    finally:
        await producer.stop()
        await reader.stop()
    return scores, dlq


def test_every_transaction_is_scored_or_dead_lettered_once(settings: Settings,
                                                           one_worker: WorkerPool) -> None:
    ds = simulate(SimulationConfig(n_customers=100, n_terminals=200, nb_days=5, seed=9,
                                   id_prefix="it"))
    good = list(outgoing(ds, 0, 600, with_labels=True))
    bad: list[Outgoing] = []
    for i, (_code, kind) in enumerate(BAD_KINDS):
        bad.append(Outgoing(good[i].key, corrupt(good[i].value, kind)))
    nan_amount = good[10].value.replace(b'"amount":', b'"amount":NaN,"x":')
    wrong_type = orjson.dumps({**orjson.loads(good[11].value), "card_id": 7})
    oversized = orjson.dumps({**orjson.loads(good[12].value), "pad": "x" * 70_000})
    bad += [Outgoing(good[10].key, nan_amount), Outgoing(good[11].key, wrong_type),
            Outgoing(good[12].key, oversized), Outgoing(None, b"")]
    records = good + bad
    scores, dlq = asyncio.run(run_through(settings, records, len(records)))

    scored_ids = [s["transaction_id"] for s in scores]
    assert len(scored_ids) == len(set(scored_ids)), "a transaction got two decisions"
    assert set(scored_ids) == {orjson.loads(r.value)["transaction_id"] for r in good}
    assert len(dlq) == len(bad)
    expected_errors = sorted([code for code, _ in BAD_KINDS] + [
        "invalid_json", "bad_field_type", "oversized", "empty_record"])
    assert sorted(d["error"] for d in dlq) == expected_errors
    # The exact bytes, or (the 70 KB record: over the output limit) their SHA-256.
    import hashlib

    payloads = {d["payload_sha256"] if d.get("payload_truncated")
                else base64.b64decode(d["payload_b64"]) for d in dlq}
    assert payloads == {hashlib.sha256(r.value).hexdigest() if r.value == oversized else r.value
                        for r in bad}, "dead letters must carry the exact bytes"
    assert all(0.0 <= s["score"] <= 1.0 and s["decision"] in ("approve", "review", "decline")
               for s in scores)
    readiness = one_worker.workers[0].readiness()
    assert readiness is not None
    assert {s["worker"] for s in scores} == {readiness["worker"]}
