"""Settings keep secrets out of their repr, refuse short ones, and warn about exposed servers."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from fraudstream.cli import SERVERS, main
from fraudstream.deploy.local import services
from fraudstream.settings import REDIS_PASSWORD_FILE, Settings, SettingsError, with_local_secrets
from tests.stack_fixtures import SIGNING_KEY

SECRET = "0123456789abcdef-secret"


def test_repr_hides_secrets_and_credentials_in_urls() -> None:
    settings = Settings(signing_key=SECRET, api_token=SECRET + "2", redis_password=SECRET + "3",
                        redis_url="redis://:redispw@db:6379/0",
                        model_stores="file:///x,redis://h:1/0?password=storepw",
                        prometheus_url="http://admin:prompw@prom:9090")
    for text in (repr(settings), str(settings), f"{settings}"):
        for secret in (SECRET, "redispw", "storepw", "prompw"):
            assert secret not in text, text
    assert "signing_key='***'" in repr(settings) and "api_token='***'" in repr(settings)
    assert "redis_url='redis://:***@db:6379/0'" in repr(settings)


def _one(name: str, value: str) -> dict[str, Any]:
    return {name: value}


@pytest.mark.parametrize("name", ["signing_key", "api_token", "redis_password"])
def test_secrets_shorter_than_16_bytes_are_refused(name: str) -> None:
    with pytest.raises(SettingsError, match=f"FRAUDSTREAM_{name.upper()} is 15 bytes"):
        dataclasses.replace(Settings(), **_one(name, "x" * 15))
    with pytest.raises(SettingsError):
        Settings.from_env({f"FRAUDSTREAM_{name.upper()}": "é" * 7})  # 14 bytes, 7 characters
    assert getattr(dataclasses.replace(Settings(), **_one(name, "x" * 16)), name) == "x" * 16
    assert getattr(Settings(), name) == ""  # unset stays allowed (the commands say what needs it)


def test_the_test_and_demo_defaults_are_long_enough() -> None:
    from tests.unit.model_registry.test_registry import KEY

    assert len(SIGNING_KEY.encode()) >= 16 and len(KEY) >= 16
    Settings(signing_key=SIGNING_KEY)
    Settings(signing_key="0" * 64)  # demo/bench: secrets.token_hex(32)


def test_the_local_redis_password_comes_from_the_state_dir(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert with_local_secrets(settings) is settings  # no stack started yet: unchanged
    assert not (tmp_path / "redis.password").exists()
    made = with_local_secrets(Settings(state_dir=tmp_path / "new"), create=True)
    assert len(made.redis_password) >= 16
    assert (tmp_path / "new" / "redis.password").stat().st_mode & 0o777 == 0o600
    assert with_local_secrets(Settings(state_dir=tmp_path / "new")) == made
    assert REDIS_PASSWORD_FILE == services.REDIS_PASSWORD_FILE  # the launcher's file
    (tmp_path / "redis.password").write_text("generated-password-0123\n")
    found = with_local_secrets(settings)
    assert found.redis_password == "generated-password-0123"
    assert found.model_store_uris[1] == "redis://:generated-password-0123@127.0.0.1:6379/0"
    explicit = Settings(state_dir=tmp_path, redis_password="p@ssword/0123456789")
    assert with_local_secrets(explicit).redis_password == "p@ssword/0123456789"
    assert explicit.model_store_uris[1] == "redis://:p%40ssword%2F0123456789@127.0.0.1:6379/0"


def test_every_server_warns_when_bound_beyond_loopback(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    assert Settings().exposure_warning("Redis") is None
    assert Settings(bind_host="::1").exposure_warning("Redis") is None
    warning = Settings(bind_host="0.0.0.0").exposure_warning("Redis")
    assert warning is not None and "Redis listens on 0.0.0.0, not loopback" in warning
    assert {"api", "worker", "supervise", "stack", "demo", "chaos", "bench"} <= set(SERVERS)
    monkeypatch.setenv("FRAUDSTREAM_BIND_HOST", "0.0.0.0")
    monkeypatch.setenv("FRAUDSTREAM_STATE_DIR", str(tmp_path))
    caplog.set_level(logging.WARNING)
    main(["stack", "status"])
    warned = [r.getMessage() for r in caplog.records if "not loopback" in r.getMessage()]
    assert [w.split(" listens")[0] for w in warned] == list(SERVERS["stack"])
