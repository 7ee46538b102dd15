"""Feature parity: a real worker's online features equal ``features/offline.py``'s, row by row."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from fraudstream.features import FEATURE_NAMES, build_feature_matrix
from fraudstream.features.definitions import DAY_S
from fraudstream.feeds import outgoing
from fraudstream.settings import Settings
from fraudstream.simulator import Dataset, SimulationConfig, simulate
from fraudstream.streaming import DueLabel, TopicReader, interleave_labels, new_producer
from fraudstream.workers.pool import WorkerPool

pytestmark = pytest.mark.integration

DELAY_DAYS = 3  # not the default 7, so a worker ignoring the setting would fail


@pytest.fixture
def feature_worker(settings: Settings) -> Iterator[tuple[Settings, WorkerPool]]:
    from fraudstream.workers.topics import ensure_topics

    # Short label batches: the test waits for its labels before many of its transactions.
    s = dataclasses.replace(settings, emit_features=True, label_delay_days=DELAY_DAYS,
                            label_batch_window_s=0.05)
    ensure_topics(s)
    pool = WorkerPool(s, 1)
    pool.start()
    try:
        pool.wait_ready(timeout=120)
        yield s, pool
    finally:
        pool.stop()
        for w in pool.workers:
            print(f"--- worker {w.index} log tail\n{w.log_tail(200)}")


def labels_applied(settings: Settings) -> float:
    url = f"http://{settings.bind_host}:{settings.worker_web_port + 1}/metrics"
    with urllib.request.urlopen(url, timeout=2.0) as resp:
        text = resp.read().decode()
    found = re.search(r'^fraudstream_labels_applied_total\{outcome="applied"\} (\S+)$', text,
                      re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def warm_up_labels(settings: Settings, producer: Any, timeout_s: float = 60.0) -> float:
    """Send throw-away labels (a merchant no dataset has) until the worker applies one; return
    the applied count then (the worker is then known to apply labels at all)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    before = labels_applied(settings)
    attempt = 0
    while True:
        attempt += 1
        label = orjson.dumps({"transaction_id": f"warm-up-{attempt}", "card_id": "warm-up",
                              "merchant_id": "warm-up", "is_fraud": 0,
                              "timestamp": "2018-01-01T00:00:00Z"})
        await producer.send_and_wait(settings.topic_labels, label, key=b"warm-up")
        retry_at = loop.time() + 5.0
        while loop.time() < retry_at:
            if labels_applied(settings) > before:
                await asyncio.sleep(1.0)  # a second warm-up label may still be on its way
                return labels_applied(settings)
            await asyncio.sleep(0.1)
        assert loop.time() < deadline, "the worker applied no label"


async def wait_applied(settings: Settings, target: float, what: str,
                       timeout_s: float = 60.0, poll_s: float = 0.02) -> None:
    """Wait until the worker has applied ``target`` labels in all (its metric)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while labels_applied(settings) < target:
        assert loop.time() < deadline, f"{what} were not applied"
        await asyncio.sleep(poll_s)


async def stream_in_event_time(settings: Settings, ds: Dataset,
                               timeout_s: float = 60.0) -> dict[str, dict[str, Any]]:
    """Transactions in time order, each label published when event time passes its
    transaction's time plus the delay (``interleave_labels``, as the live simulator does).
    Before a transaction of a merchant with a label published since the last check, wait until
    the worker has applied every label sent so far. Returns each transaction's score record
    once every label sent has been applied too: the labels that fall due after the last
    transaction (a delay's worth) are still on their way when the last score arrives, and the
    next case counts the labels it waits for from the worker's total."""
    items = list(interleave_labels(outgoing(ds, with_labels=True), DELAY_DAYS * DAY_S))
    reader = TopicReader(settings.kafka_bootstrap, [settings.topic_scores], from_beginning=True)
    producer = new_producer(settings.kafka_bootstrap)
    await reader.start()
    await producer.start()
    scores: dict[str, dict[str, Any]] = {}
    labels_sent = waits = 0
    unconfirmed: set[str] = set()
    loop = asyncio.get_running_loop()
    try:
        applied_before = await warm_up_labels(settings, producer)
        for item in items:
            if isinstance(item, DueLabel):
                await producer.send_and_wait(settings.topic_labels, item.value, key=item.key)
                labels_sent += 1
                unconfirmed.add(orjson.loads(item.value)["merchant_id"])
                continue
            if orjson.loads(item.value)["merchant_id"] in unconfirmed:
                waits += 1
                await wait_applied(settings, applied_before + labels_sent,
                                   f"{labels_sent} labels", timeout_s)
                unconfirmed.clear()
            await producer.send_and_wait(settings.topic_transactions, item.value, key=item.key)
        assert labels_sent == len(ds) and waits > 10
        deadline = loop.time() + timeout_s
        while len(scores) < len(ds):
            assert loop.time() < deadline, f"{len(scores)} of {len(ds)} scored"
            for _t, _k, value, _ts in await reader.poll(0.2):
                body = orjson.loads(value or b"")
                scores[body["transaction_id"]] = body
        await wait_applied(settings, applied_before + labels_sent, f"{labels_sent} labels",
                           timeout_s)
    finally:
        await producer.stop()
        await reader.stop()
    return scores


async def stream_labels_first(settings: Settings, ds: Dataset,
                              timeout_s: float = 60.0) -> dict[str, dict[str, Any]]:
    """Every label of ``ds`` first, applied (most of them long before they are a delay old);
    then the transactions. Returns each transaction's score record."""
    reader = TopicReader(settings.kafka_bootstrap, [settings.topic_scores], from_beginning=True)
    producer = new_producer(settings.kafka_bootstrap)
    await reader.start()
    await producer.start()
    scores: dict[str, dict[str, Any]] = {}
    wanted = set(ds.transaction_id.tolist())
    loop = asyncio.get_running_loop()
    try:
        records = list(outgoing(ds, with_labels=True))
        applied_before = labels_applied(settings)
        for rec in records:
            assert rec.label is not None
            await producer.send_and_wait(settings.topic_labels, rec.label, key=rec.key)
        await wait_applied(settings, applied_before + len(records), "the early labels",
                           timeout_s, poll_s=0.1)
        for rec in records:
            await producer.send_and_wait(settings.topic_transactions, rec.value, key=rec.key)
        deadline = loop.time() + timeout_s
        while not wanted <= set(scores):
            assert loop.time() < deadline, f"{len(wanted & set(scores))} of {len(ds)} scored"
            for _t, _k, value, _ts in await reader.poll(0.2):
                body = orjson.loads(value or b"")
                scores[body["transaction_id"]] = body
    finally:
        await producer.stop()
        await reader.stop()
    return {t: scores[t] for t in wanted}


def assert_online_equals_offline(ds: Dataset, scores: dict[str, dict[str, Any]]) -> np.ndarray:
    """Every feature of every transaction equal, exactly; returns the online matrix."""
    offline = build_feature_matrix(ds.timestamp_s, ds.card_id, ds.merchant_id, ds.amount,
                                   ds.is_fraud, DELAY_DAYS)
    assert set(scores) == set(ds.transaction_id.tolist())
    online = np.array([[scores[t]["features"][name] for name in FEATURE_NAMES]
                       for t in ds.transaction_id.tolist()])
    mismatched = [(ds.transaction_id[i], FEATURE_NAMES[j], online[i, j], offline[i, j])
                  for i, j in zip(*np.nonzero(online != offline), strict=True)]
    assert not mismatched, f"{len(mismatched)} features differ, first: {mismatched[:5]}"
    return online


def test_online_features_equal_offline_features(
        feature_worker: tuple[Settings, WorkerPool]) -> None:
    """Every transaction's features from the worker equal the offline matrix exactly.

    First, labels are published as a live system with the label delay receives them: each when
    event time passes its transaction's time plus the delay, interleaved with the
    transactions; the worker has applied every such label before it scores a transaction of
    that merchant. Offline, the same labels reach the merchant's state at the same event time.
    Then, on other cards and merchants, every label is published before any transaction: the
    worker holds labels younger than the delay and must not read them. Both sides read only
    labels of transactions at least the delay old, in exact seconds. Card features need no
    assumption: a card's transactions reach the worker in time order on the card's partition.
    Values compare exactly (JSON floats round-trip).
    """
    s, _pool = feature_worker
    ds = simulate(SimulationConfig(n_customers=60, n_terminals=40, nb_days=9, seed=21,
                                   id_prefix="parity"))
    online = assert_online_equals_offline(ds, asyncio.run(stream_in_event_time(s, ds)))
    # The comparison covered features that depend on history and on labels, not only zeros,
    # and transactions within a day of a label falling due (where whole days would leak).
    column = {name: online[:, FEATURE_NAMES.index(name)] for name in FEATURE_NAMES}
    assert column["merchant_risk_7d"].max() > 0 and column["merchant_nb_tx_30d"].max() > 0
    assert column["merchant_fraud_days_30d"].max() > 0
    assert (column["merchant_days_since_fraud"] < 1).any()
    assert column["card_nb_tx_7d"].max() > 1

    # Labels that arrive early (here all of them, before any transaction; other cards and
    # merchants) are stored but never read before they are a delay old: still equal.
    early = simulate(SimulationConfig(n_customers=60, n_terminals=40, nb_days=9, seed=22,
                                      id_prefix="early"))
    early = dataclasses.replace(
        early, card_id=np.array([f"early-{c}" for c in early.card_id], dtype=object),
        merchant_id=np.array([f"early-{m}" for m in early.merchant_id], dtype=object))
    online = assert_online_equals_offline(early, asyncio.run(stream_labels_first(s, early)))
    assert online[:, FEATURE_NAMES.index("merchant_risk_7d")].max() > 0
