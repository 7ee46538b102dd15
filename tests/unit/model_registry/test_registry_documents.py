"""One malformed document in one store marks that store's copy invalid; the others serve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import fraudstream.commands.registry_cmd as registry_cmd
from fraudstream.api.app import create_app
from fraudstream.cli import main
from fraudstream.model_registry.artifact import save_signed
from fraudstream.model_registry.registry import (
    STATE_KEY,
    ModelRegistry,
    RegistryState,
    manifest_key,
)
from fraudstream.settings import Settings
from fraudstream.workers.hot_swap import initial_scorer
from tests.unit.model_registry.test_registry import KEY, DownStore, make_version
from tests.unit.workers.test_hot_swap import Harness

DEEP = b"[" * 100_000 + b"]" * 100_000


def _state_with(**changes: object) -> bytes:
    return json.dumps({"generation": 3, "versions": {}, "aliases": {}, "history": {},
                       "updated_at": "", "signature": "0" * 64} | changes).encode()


#: Documents that each used to make a reader raise (RecursionError, TypeError...).
BAD_STATES = {
    "deep": DEEP,
    "int_signature": _state_with(signature=12345),
    "list_signature": _state_with(signature=["a"]),
    "string_generation": _state_with(generation="9"),
    "int_alias": _state_with(aliases={"production": 7}),
    "list_versions": _state_with(versions=["v1"]),
    "entry_not_a_dict": _state_with(versions={"v1": 5}),
    "version_name_is_a_path": _state_with(versions={"../../etc": {"sha256": "x"}}),
    "not_an_object": b"[1, 2, 3]",
    "unknown_field": _state_with(extra=1),
    "not_utf8": b"\xff\xfe{",
}


def _bad_manifest(good: bytes, kind: str) -> bytes:
    body = json.loads(good)
    if kind == "deep":
        return DEEP
    if kind == "int_signature":
        body["signature"] = 12345
    elif kind == "int_sha256":
        body["sha256"] = 42
    elif kind == "features_not_a_list":
        body["feature_names"] = "amount"
    return json.dumps(body).encode()


@pytest.fixture
def registry() -> ModelRegistry:
    reg = ModelRegistry([DownStore("a"), DownStore("b")], KEY)
    reg.register(*make_version("v1"))
    reg.register(*make_version("v2", 1))
    reg.promote("v1")
    reg.promote("v2")
    return reg


@pytest.mark.parametrize("kind", sorted(BAD_STATES))
def test_a_malformed_state_in_one_store_leaves_the_other_serving(
        registry: ModelRegistry, kind: str) -> None:
    registry.stores[0].put(STATE_KEY, BAD_STATES[kind])
    states = registry.read_states()
    assert states[0].state is None and states[0].error and states[1].state is not None
    assert registry.state().aliases["production"] == "v2"
    assert registry.load("production").model.version == "v2"
    assert registry.show("production")["version"] == "v2"
    report = registry.verify(repair=True)
    assert not report.ok or report.problems  # the bad copy was reported...
    assert [p.repaired for p in report.problems if p.version is None] == [True]
    assert registry.verify().problems == []  # ...and repaired
    assert registry.stores[0].get(STATE_KEY) == registry.stores[1].get(STATE_KEY)


@pytest.mark.parametrize("kind", ["deep", "int_signature", "int_sha256",
                                  "features_not_a_list"])
def test_a_malformed_manifest_in_one_store_fails_over_and_is_repaired(
        registry: ModelRegistry, kind: str) -> None:
    store = registry.stores[0]
    good = store.get(manifest_key("v2"))
    assert good is not None
    store.put(manifest_key("v2"), _bad_manifest(good, kind))
    shown = registry.show("v2")
    assert shown["replicas"]["memory://b"] == "ok"
    assert "memory://a" in shown["replicas"] and shown["replicas"]["memory://a"] != "ok"
    assert registry.load("v2").store_uri == "memory://b"
    assert registry.verify(repair=True).ok
    assert store.get(manifest_key("v2")) == good


def test_every_registry_route_and_a_starting_worker_survive_a_malformed_store(
        registry: ModelRegistry) -> None:
    registry.stores[0].put(STATE_KEY, BAD_STATES["int_signature"])
    registry.stores[1].put(manifest_key("v2"), BAD_STATES["deep"])
    app = create_app(Settings(api_token="t" * 16), start_background=False)
    app.state.registry = registry
    with TestClient(app) as client:
        for path in ("/api/registry/versions", "/api/registry/versions/production",
                     "/api/registry/aliases", "/api/registry/verify"):
            r = client.get(path)
            assert r.status_code == 200, (path, r.text)
        repaired = client.post("/api/registry/verify/repair",
                               headers={"Authorization": "Bearer " + "t" * 16})
        assert repaired.status_code == 200 and repaired.json()["ok"] is True
    registry.stores[0].put(STATE_KEY, BAD_STATES["deep"])
    h = Harness()
    started = initial_scorer(Settings(signing_key=KEY.decode()), registry, h.processor.metrics)
    assert started.scorer.version == "v2"


def test_a_signed_state_naming_a_path_as_version_is_unreadable(registry: ModelRegistry) -> None:
    # Version names become store keys (``versions/<name>/...``): even a correctly signed
    # state (a buggy writer holding the key) must not name one that walks out of the folder.
    bad = RegistryState(generation=99, versions={"../../etc": {"sha256": "0" * 64}},
                        aliases={"production": "../../etc"}).signed(KEY)
    registry.stores[0].put(STATE_KEY, bad.to_bytes())
    states = registry.read_states()
    assert states[0].state is None and states[0].error.startswith("unreadable registry state")
    assert registry.state().aliases["production"] == "v2"


def test_the_registry_cli_survives_a_malformed_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRAUDSTREAM_SIGNING_KEY", KEY.decode())
    monkeypatch.setenv("FRAUDSTREAM_MODEL_STORES",
                       f"file://{tmp_path}/store-a,file://{tmp_path}/store-b")
    monkeypatch.setattr(registry_cmd, "announce", lambda *_args: None)
    data, manifest = make_version("v1")
    model = save_signed(tmp_path / "v1.skops", data, manifest, KEY)
    assert main(["registry", "import", str(model), "--promote"]) == 0
    (tmp_path / "store-a" / STATE_KEY).write_bytes(BAD_STATES["deep"])
    (tmp_path / "store-b" / manifest_key("v1")).write_bytes(BAD_STATES["int_signature"])
    for argv in (["registry", "list"], ["registry", "show", "production"]):
        assert main(argv) == 0, argv
    assert main(["registry", "verify"]) == 1
    assert "unreadable registry state" in capsys.readouterr().out
    assert main(["registry", "verify", "--repair"]) == 0
    assert main(["registry", "verify"]) == 0
