"""Hot swap under a running stream: real Kafka, a real worker, a registry on file + real Redis.

Promote while transactions flow: every score names a version, nothing is lost, the new
version appears, and a version tampered with after its promotion is refused while the
current one keeps serving.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fraudstream.chaos.worker_metrics import post_chaos_hook, sample_value, scrape
from fraudstream.feeds import outgoing
from fraudstream.model_registry.artifact import read_manifest
from fraudstream.model_registry.registry import ModelRegistry, model_key
from fraudstream.model_registry.stores import open_stores
from fraudstream.model_registry.updates import ModelUpdate, publish_update
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.streaming import TopicReader, new_producer, produce_paced
from fraudstream.workers.pool import WorkerPool
from fraudstream.workers.topics import ensure_topics
from tests.conftest import wait_until
from tests.stack_fixtures import SIGNING_KEY, running_pool

pytestmark = pytest.mark.integration


@pytest.fixture
def registry_settings(settings: Settings) -> Settings:
    """The per-test settings (their own registry stores) with the chaos hook on."""
    return dataclasses.replace(settings, model_timeout_s=5.0, chaos_hooks=1)


@pytest.fixture
def registry(registry_settings: Settings) -> ModelRegistry:
    return ModelRegistry(open_stores(registry_settings.model_store_uris), SIGNING_KEY.encode())


def register_copy(registry: ModelRegistry, model_path: Path, version: str) -> None:
    """The test stack's model registered under another version name."""
    manifest = dataclasses.replace(read_manifest(model_path), version=version, signature="")
    registry.register(model_path.read_bytes(), manifest)


@pytest.fixture
def worker(registry_settings: Settings) -> Iterator[WorkerPool]:
    with running_pool(registry_settings, 1, log_lines=60) as pool:
        yield pool


def metric(pool: WorkerPool, name: str, labels: str = "") -> float:
    """A sample of the worker's /metrics (0 when absent)."""
    w = pool.workers[0]
    lines = scrape(f"http://{w.settings.bind_host}:{w.port}", timeout=5)
    value = sample_value(lines, name + labels)
    return 0.0 if value is None else value


def post_chaos(pool: WorkerPool, body: dict[str, Any]) -> dict[str, Any]:
    w = pool.workers[0]
    return post_chaos_hook(f"http://{w.settings.bind_host}:{w.port}", "/chaos/model", body)


def test_promote_while_transactions_flow(registry_settings: Settings, registry: ModelRegistry,
                                         base_settings: Settings) -> None:
    s = registry_settings
    tag = s.app_id.rsplit("-", 1)[-1]
    v1, v2, v3 = f"hs1-{tag}", f"hs2-{tag}", f"hs3-{tag}"
    for version in (v1, v2, v3):
        register_copy(registry, base_settings.model_path, version)
    registry.promote(v1)
    pool = WorkerPool(s, 1)
    ensure_topics(s)
    pool.start()
    try:
        pool.wait_ready(timeout=120)
        ready = pool.workers[0].readiness()
        assert ready is not None and ready["model_version"] == v1, "the worker must start on " \
            "the registry's production version"
        result = asyncio.run(stream_and_promote(s, registry, pool, v2, v3))
        final = pool.workers[0].readiness()
        swaps = metric(pool, "fraudstream_model_swaps_total")
        refused = metric(pool, "fraudstream_model_refused_total", '{reason="checksum"}')
    finally:
        pool.stop()
        for w in pool.workers:
            print(f"--- worker {w.index} log tail\n{w.log_tail(60)}")
    scores, produced_ids = result["scores"], result["produced"]
    ids = [x["transaction_id"] for x in scores]
    assert len(ids) == len(set(ids)), "a transaction was decided twice"
    assert set(ids) == produced_ids, f"lost {len(produced_ids - set(ids))} transactions"
    versions = {x["model_version"] for x in scores}
    assert versions == {v1, v2}, f"versions seen: {versions}"
    assert not any(x["degraded"] for x in scores)
    by_batch: dict[tuple[str, str], set[str]] = defaultdict(set)
    for x in scores:
        by_batch[(x["worker"], x["scored_at"])].add(x["model_version"])
    assert all(len(v) == 1 for v in by_batch.values()), "a batch was scored by two versions"
    after_refusal = [x["model_version"] for x in scores[result["refused_at_index"]:]]
    assert after_refusal and set(after_refusal) == {v2}, "the refused version served"
    assert final is not None and final["model_version"] == v2
    assert swaps == 1 and refused == 1
    print(f"swap: first {v2} score {result['swap_s']:.2f}s after the update was published")


async def stream_and_promote(s: Settings, registry: ModelRegistry, pool: WorkerPool,
                             v2: str, v3: str) -> dict[str, Any]:
    ds = simulate(SimulationConfig(n_customers=200, n_terminals=400, nb_days=10, seed=11,
                                   id_prefix=f"hs{s.app_id[-4:]}"))
    records = list(outgoing(ds, 0, 5000))
    produced = {orjson.loads(r.value)["transaction_id"] for r in records}
    reader = TopicReader(s.kafka_bootstrap, [s.topic_scores], from_beginning=True)
    await reader.start()
    producer = new_producer(s.kafka_bootstrap)
    await producer.start()
    scores: list[dict[str, Any]] = []
    produce = asyncio.create_task(produce_paced(
        producer, records, topic=s.topic_transactions, labels_topic=s.topic_labels, rate=350,
        label_delay_s=0))

    def promote_and_publish(version: str) -> None:
        done = registry.promote(version)
        publish_update(s.kafka_bootstrap, s.topic_model_updates,
                       ModelUpdate(done.alias, done.version, done.generation))

    def tamper_and_publish(version: str) -> None:
        done = registry.promote(version)  # verified now...
        for store in registry.stores:  # ...and replaced before the workers fetch it
            data = bytearray(store.get(model_key(version)) or b"")
            data[len(data) // 2] ^= 0xFF
            store.put(model_key(version), bytes(data))
        publish_update(s.kafka_bootstrap, s.topic_model_updates,
                       ModelUpdate(done.alias, done.version, done.generation))

    published_at = swap_s = 0.0
    refused_at_index = -1
    phase = "v1"
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            for _t, _k, value, _ts in await reader.poll(0.3):
                scores.append(orjson.loads(value or b""))
            if phase == "v1" and len(scores) >= 400:
                await asyncio.to_thread(promote_and_publish, v2)
                published_at, phase = time.monotonic(), "await-v2"
            elif phase == "await-v2" and any(x["model_version"] == v2 for x in scores[-500:]):
                swap_s = time.monotonic() - published_at
                await asyncio.to_thread(tamper_and_publish, v3)
                phase = "await-refusal"
            elif phase == "await-refusal" and await asyncio.to_thread(
                    lambda: metric(pool, "fraudstream_model_refused_total",
                                   '{reason="checksum"}') > 0):
                refused_at_index, phase = len(scores), "drain"
            if produce.done() and len(scores) >= len(produced):
                break
        # Anything extra (a second decision) would show up here.
        for _t, _k, value, _ts in await reader.poll(1.0):
            scores.append(orjson.loads(value or b""))
    finally:
        if not produce.done():
            produce.cancel()
        await producer.stop()
        await reader.stop()
    assert phase == "drain", f"stuck in phase {phase} with {len(scores)} scores"
    return {"scores": scores, "produced": produced, "swap_s": swap_s,
            "refused_at_index": refused_at_index}


def test_a_failing_model_degrades_scores_and_heals(registry_settings: Settings,
                                                   worker: WorkerPool) -> None:
    s = registry_settings

    ds = simulate(SimulationConfig(n_customers=100, n_terminals=200, nb_days=5, seed=3,
                                   id_prefix=f"ch{s.app_id[-4:]}"))
    records = list(outgoing(ds, 0, 400))
    half, total = len(records) // 2, len(records)

    async def run() -> list[dict[str, Any]]:
        reader = TopicReader(s.kafka_bootstrap, [s.topic_scores], from_beginning=True)
        await reader.start()
        producer = new_producer(s.kafka_bootstrap)
        await producer.start()
        out: list[dict[str, Any]] = []
        try:
            await asyncio.to_thread(post_chaos, worker, {"delay_s": 0, "fail": True})
            await produce_paced(producer, records[:half], topic=s.topic_transactions,
                                labels_topic=s.topic_labels, rate=0, label_delay_s=0)
            while len(out) < half:
                out += [orjson.loads(v or b"") for _t, _k, v, _ts in await reader.poll(0.5)]
            await asyncio.to_thread(post_chaos, worker, {"delay_s": 0, "fail": False})
            await produce_paced(producer, records[half:], topic=s.topic_transactions,
                                labels_topic=s.topic_labels, rate=0, label_delay_s=0)
            loop_deadline = time.monotonic() + 60
            while len(out) < total and time.monotonic() < loop_deadline:
                out += [orjson.loads(v or b"") for _t, _k, v, _ts in await reader.poll(0.5)]
        finally:
            await producer.stop()
            await reader.stop()
        return out

    out = asyncio.run(run())
    assert len({x["transaction_id"] for x in out}) == total == len(out)
    first, second = out[:half], out[half:]
    assert all(x["degraded"] and x["model_version"] == "rules-v1" for x in first)
    assert not any(x["degraded"] for x in second)
    assert metric(worker, "fraudstream_model_fallback_total", '{reason="error"}') >= 1
    assert metric(worker, "fraudstream_degraded_scores_total") == half
    assert metric(worker, "fraudstream_scoring_degraded") == 0


def test_forged_model_updates_neither_swap_nor_block_real_promotions(
        registry_settings: Settings, registry: ModelRegistry, base_settings: Settings) -> None:
    """The topic is open: anyone can write an update. Only the signed registry state counts."""
    from kafka import KafkaProducer

    s = registry_settings
    tag = s.app_id.rsplit("-", 1)[-1]
    old, v1, v2 = f"fo0-{tag}", f"fo1-{tag}", f"fo2-{tag}"
    for version in (old, v1, v2):
        register_copy(registry, base_settings.model_path, version)
    registry.promote(v1)
    with running_pool(s, 1, log_lines=60) as pool:
        worker = pool.workers[0]
        ready = worker.readiness()
        assert ready is not None and ready["model_version"] == v1
        producer = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
        try:
            # An old (never promoted) version with a huge generation, and garbage records.
            for value in (ModelUpdate("production", old, 2**62).to_bytes(),
                          b"[" * 100_000 + b"]" * 100_000,
                          b'{"alias": "production", "version": 7}'):
                producer.send(s.topic_model_updates, value, key=b"production").get(15)
        finally:
            producer.close(timeout=5)
        done = registry.promote(v2)
        publish_update(s.kafka_bootstrap, s.topic_model_updates,
                       ModelUpdate(done.alias, done.version, done.generation))
        wait_until(lambda: (worker.readiness() or {}).get("model_version") == v2, 60,
                   "the real promotion after the forged update was not served")
        assert metric(pool, "fraudstream_model_swaps_total") == 1, "the forged update swapped"
        family = read_manifest(base_settings.model_path).family
        assert metric(pool, "fraudstream_model_info",
                      f'{{family="{family}",version="{v2}"}}') == 1
        assert metric(pool, "fraudstream_model_info",
                      f'{{family="{family}",version="{old}"}}') == 0
        # What validation measured, for every version served (labels outlive a swap), from
        # the manifest: the live-performance alerts compare with it.
        figures = read_manifest(base_settings.model_path).metrics
        for version in (v1, v2):
            for measure in ("precision", "recall"):
                assert metric(pool, "fraudstream_model_validation_ratio",
                              f'{{measure="flagged_{measure}",model_version="{version}"}}') \
                    == pytest.approx(figures[f"val_flagged_{measure}"])
        assert 0 < figures["val_flagged_recall"] <= 1
