"""Secret-free URLs and messages, against hand-written expectations."""

from __future__ import annotations

import pytest

from fraudstream.model_registry.stores import open_store
from fraudstream.redaction import public_path, redact_text, redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://user:pw@h:6379/0", "redis://user:***@h:6379/0"),
    ("redis://secretonly@h/0", "redis://***@h/0"),
    ("redis://h:6379/0?password=x&db=1", "redis://h:6379/0?password=***&db=1"),
    ("unix:///tmp/r.sock?password=z", "unix:///tmp/r.sock?password=***"),
    ("http://admin:pw@[::1]:9090", "http://admin:***@[::1]:9090"),
    ("http://prom:9090", "http://prom:9090"),
    ("file:///a/b", "file:///a/b"),
])
def test_urls_lose_their_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_messages_lose_credentials_and_absolute_paths() -> None:
    text = ("down: redis://:pw@h:6379/0 (password=abc); file:///home/u/.stack/registry: "
            "cannot read /home/u/.stack/registry/versions/v1/manifest.json; ratio 3/4")
    assert redact_text(text) == (
        "down: redis://:***@h:6379/0 (password=***); file://…/.stack/registry: "
        "cannot read v1/manifest.json; ratio 3/4")
    assert public_path("/srv/models/current.skops") == "models/current.skops"


def test_a_redis_store_uri_never_shows_its_password() -> None:
    store = open_store("redis://:pw1@127.0.0.1:1/0?password=pw2&prefix=p")
    assert "pw1" not in store.uri and "pw2" not in store.uri
    assert store.uri == "redis://:***@127.0.0.1:1/0?password=***?prefix=p"
