"""Applying model updates to the scoring step (no Kafka): swap, refusals, shadow, start-up."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from fraudstream.features import FEATURE_NAMES
from fraudstream.model_registry.artifact import save_signed
from fraudstream.model_registry.registry import ModelRegistry, model_key
from fraudstream.model_registry.updates import ModelUpdate
from fraudstream.settings import Settings
from fraudstream.workers.hot_swap import ModelSwapper, initial_scorer
from tests.unit.model_registry.test_registry import KEY, DownStore, make_version
from tests.unit.workers.test_processor import Harness, tx


def swapper(registry: ModelRegistry, h: Harness) -> ModelSwapper:
    return ModelSwapper(bootstrap="unused:9092", topic="model-updates", registry=registry,
                        processor=h.processor, metrics=h.processor.metrics,
                        expected_features=FEATURE_NAMES)


@pytest.fixture
def registry() -> ModelRegistry:
    reg = ModelRegistry([DownStore("a"), DownStore("b")], KEY)
    for i, name in enumerate(("v1", "v2", "v3")):
        reg.register(*make_version(name, i))
    return reg


def refused(h: Harness, reason: str) -> float | None:
    return h.registry.get_sample_value("fraudstream_model_refused_total", {"reason": reason})


def test_a_verified_version_is_swapped_in_between_batches(registry: ModelRegistry) -> None:
    h = Harness()
    s = swapper(registry, h)
    registry.promote("v1")
    assert asyncio.run(s.apply(ModelUpdate("production", "v1", 1))) is False
    assert h.processor.scorer.version == "v1" and h.processor.previous is not None
    h.run([h.record(tx(1))])
    assert h.by_topic("scores")[-1]["model_version"] == "v1"
    assert h.registry.get_sample_value("fraudstream_model_swaps_total") == 1
    assert h.registry.get_sample_value("fraudstream_model_info",
                                       {"version": "v1", "family": "logreg"}) == 1
    registry.promote("v2", "shadow")
    asyncio.run(s.apply(ModelUpdate("shadow", "v2", 2)))
    assert h.processor.shadow is not None and h.processor.shadow.version == "v2"
    assert h.processor.scorer.version == "v1"


def test_a_tampered_version_is_refused_and_the_current_keeps_serving(
        registry: ModelRegistry) -> None:
    h = Harness()
    s = swapper(registry, h)
    registry.promote("v3")
    for store in registry.stores:
        store.put(model_key("v3"), b"tampered")
    assert asyncio.run(s.apply(ModelUpdate("production", "v3", 5))) is False
    assert h.processor.scorer.version == "v-test"
    assert refused(h, "checksum") == 1
    # The same update again is not retried (and not counted twice).
    asyncio.run(s.apply(ModelUpdate("production", "v3", 5)))
    assert refused(h, "checksum") == 1
    h.run([h.record(tx(1))])
    assert h.by_topic("scores")[-1]["model_version"] == "v-test"


def test_a_signed_state_older_than_the_served_model_is_ignored(
        registry: ModelRegistry) -> None:
    registry.promote("v1")  # generation 4 (three registrations, then this)
    h = Harness()
    s = ModelSwapper(bootstrap="unused:9092", topic="model-updates", registry=registry,
                     processor=h.processor, metrics=h.processor.metrics,
                     expected_features=FEATURE_NAMES, start_generation=7)
    # The update's own generation is not believed: the signed state's (4) is older than 7.
    asyncio.run(s.apply(ModelUpdate("production", "v1", 100)))
    assert h.processor.scorer.version == "v-test"
    for version in ("v2", "v3", "v1"):  # generations 5, 6, 7, and 8
        registry.promote(version)
    registry.promote("v2")
    asyncio.run(s.apply(ModelUpdate("production", "v2", 0)))
    assert h.processor.scorer.version == "v2"


def test_a_forged_update_neither_swaps_nor_blocks_later_promotions(
        registry: ModelRegistry) -> None:
    registry.promote("v1")
    registry.promote("v2")
    h = Harness()
    s = swapper(registry, h)
    asyncio.run(s.apply(ModelUpdate("production", "v2", registry.state().generation)))
    assert h.processor.scorer.version == "v2"
    # Anyone can produce to the topic: an old version with a huge generation...
    assert asyncio.run(s.apply(ModelUpdate("production", "v1", 2**62))) is False
    assert h.processor.scorer.version == "v2"
    # ...a registered version never promoted, and one that does not exist.
    asyncio.run(s.apply(ModelUpdate("production", "v3", 2**62)))
    asyncio.run(s.apply(ModelUpdate("shadow", "v404", 1)))
    assert h.processor.scorer.version == "v2" and h.processor.shadow is None
    # A real promotion after them is still served, whatever generation its update claims.
    registry.promote("v3")
    asyncio.run(s.apply(ModelUpdate("production", "v3", 1)))
    assert h.processor.scorer.version == "v3"


def test_a_refusal_while_a_store_was_down_is_retried(registry: ModelRegistry) -> None:
    registry.promote("v3")
    good = registry.stores[0].get(model_key("v3"))
    assert good is not None
    registry.stores[0].put(model_key("v3"), b"tampered")
    down = registry.stores[1]
    assert isinstance(down, DownStore)
    down.down = True
    h = Harness()
    s = swapper(registry, h)
    # The only copy that answered is tampered; the other store's may be good: retry.
    assert asyncio.run(s.apply(ModelUpdate("production", "v3", 4))) is True
    assert h.processor.scorer.version == "v-test" and refused(h, "checksum") == 1
    down.down = False
    assert asyncio.run(s.apply(ModelUpdate("production", "v3", 4))) is False
    assert h.processor.scorer.version == "v3"


def test_stores_down_is_retried_and_unknown_versions_refused(registry: ModelRegistry) -> None:
    h = Harness()
    s = swapper(registry, h)
    registry.promote("v2")
    for store in registry.stores:
        assert isinstance(store, DownStore)
        store.down = True
    assert asyncio.run(s.apply(ModelUpdate("production", "v2", 3))) is True
    assert refused(h, "store_unavailable") == 1
    for store in registry.stores:
        assert isinstance(store, DownStore)
        store.down = False
    assert asyncio.run(s.apply(ModelUpdate("production", "v2", 3))) is False
    assert h.processor.scorer.version == "v2"


def test_start_up_prefers_the_registry_then_the_file(tmp_path: Path,
                                                     registry: ModelRegistry) -> None:
    data, manifest = make_version("file-v", 7)
    path = save_signed(tmp_path / "m.skops", data, manifest, KEY)
    settings = Settings(model_path=path, signing_key=KEY.decode())
    h = Harness()
    first = initial_scorer(settings, registry, h.processor.metrics)
    assert first.scorer.version == "file-v" and first.source == str(path)
    registry.promote("v2")
    second = initial_scorer(settings, registry, h.processor.metrics)
    assert second.scorer.version == "v2" and second.source.startswith("registry")
    assert second.generation == registry.state().generation
    for store in registry.stores:
        store.put(model_key("v2"), b"tampered")
    third = initial_scorer(settings, registry, h.processor.metrics)
    assert third.scorer.version == "file-v" and refused(h, "checksum") == 1
    assert dataclasses.replace(settings, model_stores="").model_store_uris[1].startswith(
        "redis://127.0.0.1:6379")


def test_the_previous_production_version_is_preloaded_as_fallback(
        registry: ModelRegistry) -> None:
    registry.promote("v1")
    registry.promote("v2")
    h = Harness()
    h.processor.scorer = initial_scorer(Settings(signing_key=KEY.decode()), registry,
                                        h.processor.metrics).scorer
    asyncio.run(swapper(registry, h).load_previous())
    assert h.processor.previous is not None and h.processor.previous.version == "v1"


@pytest.mark.parametrize("raw", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"alias": "production", "version": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b'{"alias": ["production"], "version": "v1"}',
    b'{"alias": "production", "version": 7}',
    b'{"alias": "production", "version": "v1", "generation": "9"}',
    b'"production"',
    b'{"alias": "production", "version": "' + b"v" * 10_000 + b'"}',
    b"\xff\xfe",
    None,
])
def test_a_malformed_update_record_is_none_never_an_exception(raw: bytes | None) -> None:
    assert ModelUpdate.from_bytes(raw) is None


def test_a_well_formed_update_record_round_trips() -> None:
    update = ModelUpdate("production", "v1", 3, "2026-11-30T00:00:00.000+00:00")
    assert ModelUpdate.from_bytes(update.to_bytes()) == update


def _initial(version: str, generation: int) -> Any:
    from fraudstream.workers.hot_swap import InitialModel

    scorer: Any = type("FakeScorer", (), {"version": version})()
    return InitialModel(scorer, "test", generation)


def test_an_activated_standby_reloads_when_the_registry_moved_since_it_started() -> None:
    from fraudstream.workers.hot_swap import current_for_activation

    loaded = _initial("v1", 3)
    assert current_for_activation(loaded, lambda: 3, lambda: _initial("v2", 3)) is loaded
    moved = current_for_activation(loaded, lambda: 4, lambda: _initial("v0-rollback", 4))
    assert (moved.scorer.version, moved.generation) == ("v0-rollback", 4)


def test_an_activated_standby_keeps_its_model_when_the_registry_cannot_say() -> None:
    from fraudstream.workers.hot_swap import current_for_activation

    def down() -> int:
        raise ConnectionError("redis and the file store unreachable")

    loaded = _initial("v1", 3)
    assert current_for_activation(loaded, down, lambda: _initial("file", 0)) is loaded
