"""The registry over in-memory stores: replication, aliases, failover, corruption, repair."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fraudstream.features import FEATURE_NAMES
from fraudstream.model_registry.artifact import ModelManifest, serialise
from fraudstream.model_registry.errors import (
    InvalidRequest,
    ModelRefused,
    NotFound,
    StoreUnavailable,
    http_status,
)
from fraudstream.model_registry.registry import STATE_KEY, ModelRegistry, model_key
from fraudstream.model_registry.stores import (
    FileStore,
    MemoryStore,
    RedisStore,
    open_store,
    redact,
    store_labels,
)

KEY = b"unit-registry-key"


class DownStore(MemoryStore):
    """A memory store that can be switched off (every call then raises StoreUnavailable)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable(f"{self.uri}: connection refused")

    def get(self, key: str) -> bytes | None:
        self._check()
        return super().get(key)

    def put(self, key: str, data: bytes) -> None:
        self._check()
        super().put(key, data)

    def ping(self) -> None:
        self._check()


def make_version(name: str, seed: int = 0) -> tuple[bytes, ModelManifest]:
    """A tiny real logistic regression over the feature list, and its unsigned manifest."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, len(FEATURE_NAMES)))
    y = (x[:, 0] > 0).astype(int)
    data = serialise(LogisticRegression().fit(x, y))
    return data, ModelManifest(version=name, family="logreg", feature_names=list(FEATURE_NAMES),
                               sha256=hashlib.sha256(data).hexdigest(), created_at="2026-11-27",
                               review_threshold=0.3, decline_threshold=0.8)


@pytest.fixture
def stores() -> list[DownStore]:
    return [DownStore("a"), DownStore("b")]


@pytest.fixture
def registry(stores: list[DownStore]) -> ModelRegistry:
    return ModelRegistry(stores, KEY)


def test_an_empty_registry_verifies_clean(registry: ModelRegistry) -> None:
    assert registry.verify().problems == [] and registry.list_versions() == []


def test_register_writes_every_store_and_promote_rollback(registry: ModelRegistry,
                                                          stores: list[DownStore]) -> None:
    registry.register(*make_version("v1"))
    registry.register(*make_version("v2", 1))
    assert all(model_key("v1") in s.blobs and model_key("v2") in s.blobs for s in stores)
    assert [r["version"] for r in registry.list_versions()] == ["v1", "v2"]
    with pytest.raises(NotFound, match="promote one first"):
        registry.resolve("production")
    assert registry.promote("v1").previous is None
    p = registry.promote("v2")
    assert (p.version, p.previous) == ("v2", "v1")
    assert registry.resolve("production") == "v2"
    assert registry.show("production")["aliases"] == ["production"]
    back = registry.rollback()
    assert (back.version, back.previous) == ("v1", "v2")
    assert registry.load("production").model.version == "v1"
    with pytest.raises(InvalidRequest, match="no earlier version"):
        registry.rollback()
    with pytest.raises(InvalidRequest, match="unknown alias"):
        registry.promote("v1", alias="canary")
    with pytest.raises(NotFound, match="unknown version or alias 'v9'"):
        registry.show("v9")
    with pytest.raises(InvalidRequest, match="already registered"):
        registry.register(*make_version("v1"))


def test_a_store_down_is_skipped_for_reads_and_promotions(registry: ModelRegistry,
                                                         stores: list[DownStore]) -> None:
    registry.register(*make_version("v1"))
    registry.register(*make_version("v2", 1))
    registry.promote("v1")
    stores[0].down = True
    loaded = registry.load("production")
    assert loaded.store_uri == "memory://b"
    promotion = registry.promote("v2")
    assert promotion.missed_stores == ["memory://a"]
    stores[0].down = False
    # Store a holds an older generation: the newest one wins on read.
    assert registry.resolve("production") == "v2"
    report = registry.verify()
    assert not report.ok and any("generation" in p.problem for p in report.problems)
    assert registry.verify(repair=True).ok
    assert registry.verify().problems == []


def test_register_needs_two_copies_and_leaves_nothing_half_written(
        registry: ModelRegistry, stores: list[DownStore]) -> None:
    stores[1].down = True
    with pytest.raises(StoreUnavailable, match="only 1 of the 2 required copies"):
        registry.register(*make_version("v1"))
    assert model_key("v1") not in stores[0].blobs
    stores[1].down = False
    assert registry.list_versions() == []
    stores[0].down = stores[1].down = True
    with pytest.raises(StoreUnavailable, match="no model store answered"):
        registry.list_versions()


def test_a_corrupt_replica_fails_over_and_is_repaired(registry: ModelRegistry,
                                                      stores: list[DownStore]) -> None:
    data, manifest = make_version("v1")
    registry.register(data, manifest)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    stores[0].blobs[model_key("v1")] = bytes(flipped)
    assert registry.load("v1").store_uri == "memory://b"
    report = registry.verify()
    assert [(p.store, p.version) for p in report.problems] == [("memory://a", "v1")]
    assert "checksum mismatch" in report.problems[0].problem
    assert registry.verify(repair=True).ok
    assert stores[0].blobs[model_key("v1")] == data
    # Both copies tampered: refused with the reason, never loaded.
    for s in stores:
        s.blobs[model_key("v1")] = bytes(flipped)
    with pytest.raises(ModelRefused, match="checksum mismatch") as refused:
        registry.load("v1")
    assert refused.value.reason == "checksum"
    with pytest.raises(ModelRefused):
        registry.promote("v1")
    assert "cannot repair" in registry.verify(repair=True).problems[0].problem


def test_signatures_guard_manifests_and_state(registry: ModelRegistry,
                                              stores: list[DownStore]) -> None:
    registry.register(*make_version("v1"))
    with pytest.raises(ModelRefused, match="FRAUDSTREAM_SIGNING_KEY"):
        ModelRegistry(stores, b"another-key").list_versions()
    # An edited manifest (a looser threshold) in one store: that replica is skipped.
    key = "versions/v1/manifest.json"
    stores[0].blobs[key] = stores[0].blobs[key].replace(b'"decline_threshold": 0.8',
                                                        b'"decline_threshold": 0.99')
    assert registry.load("v1").store_uri == "memory://b"
    assert "bad manifest signature" in registry.verify().problems[0].problem
    # A forged state (an alias added without the key) is ignored for a valid one.
    forged = stores[0].blobs[STATE_KEY].replace(b'"aliases": {}', b'"aliases": {"x": "y"}')
    assert forged != stores[0].blobs[STATE_KEY]
    stores[0].blobs[STATE_KEY] = forged
    assert "bad signature" in registry.read_states()[0].error
    assert registry.resolve("v1") == "v1"


def test_feature_mismatch_is_refused(registry: ModelRegistry) -> None:
    registry.register(*make_version("v1"))
    with pytest.raises(ModelRefused) as refused:
        registry.load("v1", expected_features=["amount"])
    assert refused.value.reason == "features"


def test_store_uris_labels_and_http_codes(tmp_path: Path) -> None:
    assert isinstance(open_store(f"file://{tmp_path}/reg"), FileStore)
    redis_store = open_store("redis://:s3cret@127.0.0.1:6379/0?prefix=t1")
    assert isinstance(redis_store, RedisStore) and redis_store.prefix == "t1"
    assert "s3cret" not in redis_store.uri
    assert redact("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    with pytest.raises(InvalidRequest, match="unknown store URI"):
        open_store("s3://bucket")
    assert store_labels([FileStore(tmp_path), redis_store, FileStore(tmp_path)]) == [
        "file", "redis", "file-2"]
    assert http_status(NotFound("x")) == 404 and http_status(StoreUnavailable("x")) == 503
    store = FileStore(tmp_path / "fs")
    store.put("versions/a/model.skops", b"abc")
    assert store.get("versions/a/model.skops") == b"abc" and store.get("nope") is None
    with pytest.raises(InvalidRequest):
        store.get("../escape")
