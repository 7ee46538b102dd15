"""The registry through the CLI (file stores) and the HTTP API (memory stores), no services."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

import fraudstream.commands.registry_cmd as registry_cmd
from fraudstream.api.app import create_app
from fraudstream.api.registry import get_publisher
from fraudstream.cli import main
from fraudstream.model_registry.artifact import save_signed
from fraudstream.model_registry.registry import ModelRegistry, model_key
from fraudstream.model_registry.stores import MemoryStore
from fraudstream.model_registry.updates import ModelUpdate
from fraudstream.settings import Settings
from tests.unit.model_registry.test_registry import KEY, make_version

TOKEN = "registry-token-0123456789"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    monkeypatch.setenv("FRAUDSTREAM_SIGNING_KEY", KEY.decode())
    monkeypatch.setenv("FRAUDSTREAM_MODEL_STORES",
                       f"file://{tmp_path}/store-a,file://{tmp_path}/store-b")
    announced: list[tuple[str, str, int]] = []
    monkeypatch.setattr(registry_cmd, "announce",
                        lambda _s, alias, version, gen: announced.append((alias, version, gen)))
    return announced


def signed_file(tmp_path: Path, version: str, seed: int = 0) -> Path:
    data, manifest = make_version(version, seed)
    return save_signed(tmp_path / f"{version}.skops", data, manifest, KEY)


def test_cli_import_promote_rollback_verify(tmp_path: Path, cli_env: list,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "import", str(signed_file(tmp_path, "v1")), "--promote"]) == 0
    assert main(["registry", "import", str(signed_file(tmp_path, "v2", 1))]) == 0
    assert main(["registry", "promote", "v2"]) == 0
    assert main(["registry", "list"]) == 0
    out = capsys.readouterr().out
    assert "production: v1 -> v2" in out and "v2" in out.splitlines()[-1]
    assert cli_env == [("production", "v1", 2), ("production", "v2", 4)]
    assert main(["registry", "rollback"]) == 0
    assert cli_env[-1][:2] == ("production", "v1")
    # Corrupt one replica: verify fails (exit 1), repair fixes it.
    (tmp_path / "store-a" / model_key("v2")).write_bytes(b"not a model")
    assert main(["registry", "verify"]) == 1
    assert "checksum mismatch" in capsys.readouterr().out
    assert main(["registry", "verify", "--repair"]) == 0
    assert main(["registry", "verify"]) == 0
    assert main(["registry", "show", "production"]) == 0
    assert '"version": "v1"' in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["registry", "show", "v404"], "unknown version or alias 'v404'"),
    (["registry", "promote", "v404"], "unknown version or alias"),
    (["registry", "rollback"], "no earlier version"),
    (["registry", "promote", "v1", "--alias", "canary"], "unknown alias 'canary'"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, cli_env: list, argv: list[str],
                                         message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "import", str(signed_file(tmp_path, "v1")), "--promote"]) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith(
        "fraudstream registry: error:")


def test_cli_tampered_version_cannot_be_promoted(tmp_path: Path, cli_env: list,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "import", str(signed_file(tmp_path, "v1"))]) == 0
    for store in ("store-a", "store-b"):
        path = tmp_path / store / model_key("v1")
        data = bytearray(path.read_bytes())
        data[100] ^= 0xFF
        path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["registry", "promote", "v1"]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert cli_env == []


def test_cli_store_down_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRAUDSTREAM_SIGNING_KEY", KEY.decode())
    # Nothing listens on port 1: the only store is down.
    monkeypatch.setenv("FRAUDSTREAM_MODEL_STORES", "redis://127.0.0.1:1/0")
    assert main(["registry", "list"]) == 2
    err = capsys.readouterr().err
    assert "no model store answered" in err and len(err.strip().splitlines()) == 1


def api(registry: ModelRegistry, published: list[ModelUpdate]) -> TestClient:
    app = create_app(Settings(api_token=TOKEN, signing_key=KEY.decode()),
                     start_background=False)
    app.state.registry = registry
    app.dependency_overrides[get_publisher] = lambda: (
        lambda _settings, update: published.append(update))
    return TestClient(app)


def test_api_reads_are_open_and_mutations_need_the_token() -> None:
    registry = ModelRegistry([MemoryStore("a"), MemoryStore("b")], KEY)
    registry.register(*make_version("v1"))
    registry.register(*make_version("v2", 1))
    published: list[ModelUpdate] = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with api(registry, published) as client:
        assert [r["version"] for r in client.get("/api/registry/versions").json()] == [
            "v1", "v2"]
        assert client.post("/api/registry/aliases/production",
                           json={"version": "v1"}).status_code == 401
        r = client.post("/api/registry/aliases/production", json={"version": "v1"},
                        headers=auth)
        assert r.status_code == 200 and r.json()["version"] == "v1"
        client.post("/api/registry/aliases/production", json={"version": "v2"}, headers=auth)
        assert client.get("/api/registry/aliases").json()["aliases"]["production"] == "v2"
        back = client.post("/api/registry/aliases/production/rollback", headers=auth).json()
        assert (back["version"], back["previous"]) == ("v1", "v2")
        assert [(u.alias, u.version) for u in published] == [
            ("production", "v1"), ("production", "v2"), ("production", "v1")]
        assert client.get("/api/registry/versions/production").json()["version"] == "v1"
        missing = client.get("/api/registry/versions/v404")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        bad = client.post("/api/registry/aliases/canary", json={"version": "v1"}, headers=auth)
        assert bad.status_code == 400
        assert client.get("/api/registry/verify").json()["ok"] is True
        registry.stores[0].put(model_key("v2"), b"tampered")
        assert client.get("/api/registry/verify").json()["ok"] is False
        assert client.post("/api/registry/verify/repair", headers=auth).json()["ok"] is True
