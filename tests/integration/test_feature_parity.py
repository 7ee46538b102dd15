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

from features import FEATURE_NAMES, build_feature_matrix
from features.definitions import DAY_S
from fraudstream.feeds import outgoing
from fraudstream.settings import Settings
from fraudstream.streaming import TopicReader, new_producer
from simulator import Dataset, SimulationConfig, simulate
from workers.pool import WorkerPool

pytestmark = pytest.mark.integration

DELAY_DAYS = 3  # not the default 7, so a worker ignoring the setting would fail


@pytest.fixture
def feature_worker(settings: Settings) -> Iterator[tuple[Settings, WorkerPool]]:
    from workers.topics import ensure_topics

    s = dataclasses.replace(settings, emit_features=True, label_delay_days=DELAY_DAYS)
    ensure_topics(s)
    pool = WorkerPool(s, 1)
    pool.start()
    try:
        pool.wait_ready(timeout=120)
        yield s, pool
    finally:
        pool.stop()
        for w in pool.workers:
            print(f"--- worker {w.index} log tail\n{w.log_tail(40)}")


def labels_applied(settings: Settings) -> float:
    url = f"http://{settings.bind_host}:{settings.worker_web_port + 1}/metrics"
    with urllib.request.urlopen(url, timeout=2.0) as resp:
        text = resp.read().decode()
    found = re.search(r'^fraudstream_labels_applied_total\{outcome="applied"\} (\S+)$', text,
                      re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def stream_day_by_day(settings: Settings, ds: Dataset,
                            timeout_s: float = 60.0) -> dict[str, dict[str, Any]]:
    """Each day: first the labels of every day at least the delay old, applied; then the day's
    transactions, scored. Returns each transaction's score record."""
    days = ds.timestamp_s // DAY_S
    records = list(outgoing(ds, with_labels=True))
    reader = TopicReader(settings.kafka_bootstrap, [settings.topic_scores], from_beginning=True)
    producer = new_producer(settings.kafka_bootstrap)
    await reader.start()
    await producer.start()
    scores: dict[str, dict[str, Any]] = {}
    labelled = 0
    loop = asyncio.get_running_loop()
    try:
        for day in range(int(days[0]), int(days[-1]) + 1):
            known = int(np.searchsorted(days, day - DELAY_DAYS, side="right"))
            for rec in records[labelled:known]:
                assert rec.label is not None
                await producer.send_and_wait(settings.topic_labels, rec.label, key=rec.key)
            labelled = max(labelled, known)
            deadline = loop.time() + timeout_s
            while labels_applied(settings) < labelled:
                assert loop.time() < deadline, f"labels up to day {day} were not applied"
                await asyncio.sleep(0.1)
            lo, hi = np.searchsorted(days, [day, day + 1])
            for rec in records[lo:hi]:
                await producer.send_and_wait(settings.topic_transactions, rec.value, key=rec.key)
            deadline = loop.time() + timeout_s
            while len(scores) < hi:
                assert loop.time() < deadline, f"day {day}: {len(scores)} of {hi} scored"
                for _t, _k, value, _ts in await reader.poll(0.2):
                    body = orjson.loads(value or b"")
                    scores[body["transaction_id"]] = body
    finally:
        await producer.stop()
        await reader.stop()
    return scores


def test_online_features_equal_offline_features(
        feature_worker: tuple[Settings, WorkerPool]) -> None:
    """Every transaction's features from the worker equal the offline matrix exactly.

    Assumption that makes them comparable: offline, a transaction's label reaches its
    merchant's state right after it is scored, but merchant features only read days at least
    ``label_delay_days`` old. Online, labels arrive through the ``labels`` topic whenever they
    are published; this test publishes (and waits until the worker has applied) the labels of
    every day at least the delay old before it sends a day's transactions, which is when a
    live system with that delay knows them. Labels younger than the delay are not sent yet;
    the offline executor has them but never reads them (nor do they prune older days that a
    feature reads). Card features need no assumption: a card's transactions reach the worker
    in time order on the card's partition. Values compare exactly (JSON floats round-trip).
    """
    s, _pool = feature_worker
    ds = simulate(SimulationConfig(n_customers=60, n_terminals=40, nb_days=9, seed=21,
                                   id_prefix="parity"))
    offline = build_feature_matrix(ds.timestamp_s, ds.card_id, ds.merchant_id, ds.amount,
                                   ds.is_fraud, DELAY_DAYS)
    scores = asyncio.run(stream_day_by_day(s, ds))

    assert set(scores) == set(ds.transaction_id.tolist())
    online = np.array([[scores[t]["features"][name] for name in FEATURE_NAMES]
                       for t in ds.transaction_id.tolist()])
    mismatched = [(ds.transaction_id[i], FEATURE_NAMES[j], online[i, j], offline[i, j])
                  for i, j in zip(*np.nonzero(online != offline), strict=True)]
    assert not mismatched, f"{len(mismatched)} features differ, first: {mismatched[:5]}"
    # The comparison covered features that depend on history and on labels, not only zeros.
    column = {name: online[:, FEATURE_NAMES.index(name)] for name in FEATURE_NAMES}
    assert column["merchant_risk_7d"].max() > 0 and column["merchant_nb_tx_30d"].max() > 0
    assert column["card_nb_tx_7d"].max() > 1
