"""The model store on Kafka (``kafka:``), against the real broker.

A store is a blob store whose newest record per key wins: what one store instance writes,
another (another host) reads; large models travel whole; a tombstone deletes. Workers whose only
store is Kafka (no file store, no Redis, no model file on disk) start on the registry's
production version read from Kafka and hot-swap to a version promoted there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from fraudstream import kafka_clients
from fraudstream.feeds import outgoing
from fraudstream.model_registry.artifact import read_manifest
from fraudstream.model_registry.errors import StoreUnavailable
from fraudstream.model_registry.kafka_store import MAX_RECORD_BYTES, KafkaStore
from fraudstream.model_registry.registry import ModelRegistry
from fraudstream.model_registry.stores import open_store
from fraudstream.model_registry.updates import ModelUpdate, publish_update
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.streaming import TopicReader, new_producer, produce_paced
from tests.stack_fixtures import running_pool

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka_stores() -> Iterator[list[KafkaStore]]:
    """Kafka stores a test opens (closed after it: their clients would retry a stopped
    broker)."""
    opened: list[KafkaStore] = []
    yield opened
    for store in opened:
        store.close()


def kafka_store(settings: Settings, opened: list[KafkaStore]) -> KafkaStore:
    store = open_store("kafka:", settings)
    assert isinstance(store, KafkaStore)
    opened.append(store)
    return store


def test_another_store_reads_what_one_wrote_newest_first(settings: Settings,
                                                         kafka_stores: list[KafkaStore]
                                                         ) -> None:
    writer, reader = kafka_store(settings, kafka_stores), kafka_store(settings, kafka_stores)
    assert writer.topic == settings.topic_model_store
    model = os.urandom(3 * 1024 * 1024)  # over Kafka's default 1 MB record limit
    writer.put("versions/v1/model.skops", model)
    writer.put("state.json", b"one")
    writer.put("state.json", b"two")
    assert reader.get("versions/v1/model.skops") == model
    assert reader.get("state.json") == b"two"
    assert reader.get("absent") is None
    writer.delete("state.json")
    writer.put("state.json", b"three")
    writer.delete("versions/v1/model.skops")
    assert reader.get("versions/v1/model.skops") is None
    assert reader.get("state.json") == b"three"
    # A third instance, started after all of it, reads the same (from the topic alone).
    assert kafka_store(settings, kafka_stores).get("state.json") == b"three"
    reader.ping()
    configs = topic_configs(settings, settings.topic_model_store)
    print(f"\ntopic configs: {configs}")
    assert configs["cleanup.policy"] == "compact"
    assert int(configs["max.message.bytes"]) > MAX_RECORD_BYTES


def topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    """The topic's configuration as the broker describes it."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = kafka_clients.admin(settings)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    # {resource type: {resource name: {config key: {config data}}}} (kafka-python 3)
    entries = next(iter(described.values()))[topic]
    return {key: data["value"] if isinstance(data, dict) else data
            for key, data in entries.items()}


def test_no_broker_is_a_store_down(settings: Settings, kafka_stores: list[KafkaStore]) -> None:
    store = kafka_store(dataclasses.replace(settings, bootstrap_servers="127.0.0.1:1"),
                        kafka_stores)
    with pytest.raises(StoreUnavailable, match="kafka:"):
        store.get("state.json")


def test_workers_with_only_the_kafka_store_score_and_swap(settings: Settings,
                                                          base_settings: Settings,
                                                          kafka_stores: list[KafkaStore],
                                                          tmp_path: Path) -> None:
    # No file store, no Redis, and no model file where the worker would fall back to one.
    s = dataclasses.replace(settings, model_stores="kafka:",
                            model_path=tmp_path / "absent" / "model.skops")
    registry = ModelRegistry.of(s)
    kafka_stores.extend(store for store in registry.stores if isinstance(store, KafkaStore))
    tag = s.app_id.rsplit("-", 1)[-1]
    v1, v2 = f"ks1-{tag}", f"ks2-{tag}"
    for version in (v1, v2):
        manifest = dataclasses.replace(read_manifest(base_settings.model_path),
                                       version=version, signature="")
        registry.register(base_settings.model_path.read_bytes(), manifest)
    registry.promote(v1)
    with running_pool(s, 1, log_lines=60) as pool:
        ready = pool.workers[0].readiness()
        assert ready is not None and ready["model_version"] == v1
        versions = asyncio.run(_score_and_promote(s, registry, v2))
    assert versions[0] == v1 and versions[-1] == v2, versions[:3] + versions[-3:]


async def _score_and_promote(s: Settings, registry: ModelRegistry, v2: str) -> list[str]:
    """Versions of the scores, in order, while 1,500 transactions flow; v2 is promoted (and
    announced on the model-updates topic) once 300 are scored."""
    ds = simulate(SimulationConfig(n_customers=100, n_terminals=200, nb_days=5, seed=5,
                                   id_prefix=f"ks{s.app_id[-4:]}"))
    records = list(outgoing(ds, 0, 1500))
    reader = TopicReader(s, [s.topic_scores], from_beginning=True)
    await reader.start()
    producer = new_producer(s)
    await producer.start()
    versions: list[str] = []
    produce = asyncio.create_task(produce_paced(
        producer, records, topic=s.topic_transactions, labels_topic=s.topic_labels, rate=200,
        label_delay_s=0))
    promoted = False
    try:
        async with asyncio.timeout(120):
            while len(versions) < len(records) or (promoted and v2 not in versions):
                for _t, _k, value, _ts in await reader.poll(0.3):
                    versions.append(orjson.loads(value or b"")["model_version"])
                if not promoted and len(versions) >= 300:
                    done = await asyncio.to_thread(registry.promote, v2)
                    await asyncio.to_thread(publish_update, s, s.topic_model_updates,
                                            ModelUpdate(done.alias, done.version,
                                                        done.generation))
                    promoted = True
    finally:
        if not produce.done():
            produce.cancel()
        await producer.stop()
        await reader.stop()
    return versions
