"""The registry over a real file store and a real Redis: replication, corruption, failover."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream.deploy.local.services import RedisServer
from fraudstream.model_registry.artifact import ModelManifest, read_manifest
from fraudstream.model_registry.errors import ModelRefused, StoreUnavailable
from fraudstream.model_registry.registry import ModelRegistry, model_key
from fraudstream.model_registry.stores import FileStore, RedisStore, open_stores
from fraudstream.settings import Settings
from tests.conftest import wait_until
from tests.stack_fixtures import BASE_PORT, SIGNING_KEY

pytestmark = pytest.mark.integration
KEY = SIGNING_KEY.encode()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, so it can be stopped without harming other tests."""
    server = RedisServer(tmp_path / "redis-root", "127.0.0.1", BASE_PORT + 81)
    server.start()
    try:
        wait_until(server.ready, 20, "the test's Redis did not start")
        yield server
    finally:
        server.process.stop()


def a_version(model_path: Path, name: str) -> tuple[bytes, ModelManifest]:
    """The test stack's model under another version name."""
    manifest = dataclasses.replace(read_manifest(model_path), version=name, signature="")
    return model_path.read_bytes(), manifest


def test_replicas_corruption_and_failover_with_a_real_redis(
        tmp_path: Path, own_redis: RedisServer, base_settings: Settings) -> None:
    prefix = f"fs-test-{uuid.uuid4().hex[:8]}"
    stores = open_stores(f"file://{tmp_path}/registry,"
                         f"redis://:{own_redis.secret()}@127.0.0.1:{own_redis.port}/0"
                         f"?prefix={prefix}")
    file_store, redis_store = stores
    assert isinstance(file_store, FileStore) and isinstance(redis_store, RedisStore)
    registry = ModelRegistry(stores, KEY)
    data, manifest = a_version(base_settings.model_path, "it-v1")
    registry.register(data, manifest)
    data2, manifest2 = a_version(base_settings.model_path, "it-v2")
    registry.register(data2, manifest2)
    registry.promote("it-v1")
    assert redis_store.get(model_key("it-v1")) == data
    assert file_store.get(model_key("it-v1")) == data

    # A corrupt Redis copy: the file copy serves, verify finds it, repair restores it.
    redis_store.put(model_key("it-v1"), data[:-10] + b"0123456789")
    assert registry.load("production").store_uri == file_store.uri
    report = registry.verify()
    assert [(p.store, p.version) for p in report.problems] == [(redis_store.uri, "it-v1")]
    assert registry.verify(repair=True).ok
    assert redis_store.get(model_key("it-v1")) == data

    # Redis down: reads fail over to the file store, a promotion still goes through.
    own_redis.process.stop()
    assert registry.load("production").store_uri == file_store.uri
    promotion = registry.promote("it-v2")
    assert promotion.missed_stores == [redis_store.uri]
    data3, manifest3 = a_version(base_settings.model_path, "it-v3")
    with pytest.raises(StoreUnavailable, match="only 1 of the 2 required copies"):
        registry.register(data3, manifest3)
    assert file_store.get(model_key("it-v3")) is None, "a half-written version was left"
    assert not registry.verify().ok

    # Back up with a stale state: the newest generation wins, repair brings Redis up to date.
    own_redis.start()
    wait_until(own_redis.ready, 20, "the test's Redis did not restart")
    assert registry.resolve("production") == "it-v2"
    assert registry.verify(repair=True).ok
    assert registry.verify().problems == []

    # The file store corrupt and Redis fine: failover the other way.
    (tmp_path / "registry" / model_key("it-v2")).write_bytes(b"garbage")
    assert registry.load("production").store_uri == redis_store.uri
    # Both copies tampered: refused, never loaded.
    redis_store.put(model_key("it-v2"), b"garbage")
    with pytest.raises(ModelRefused) as refused:
        registry.load("production")
    assert refused.value.reason == "checksum"
