"""Limits met before any route: body caps, token before body, per-client rate and concurrency,
the shared dashboard summary, and answers that carry no secrets or local paths."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

import fraudstream.api.dashboard as api_dashboard
from fraudstream.api.app import create_app
from fraudstream.api.limits import RequestLimits
from fraudstream.api.registry import get_publisher
from fraudstream.model_registry.registry import ModelRegistry
from fraudstream.model_registry.stores import FileStore, open_store
from fraudstream.settings import Settings
from tests.unit.model_registry.test_registry import KEY, make_version

TOKEN = "limits-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class BodyCounter:
    """Outermost ASGI wrapper: how many body bytes the app pulled from the client."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.read = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting() -> Message:
            message = await receive()
            self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counting, send)


def registry_app(tmp_path: Path, **limits: Any) -> Any:
    registry = ModelRegistry([FileStore(tmp_path / "a"), FileStore(tmp_path / "b")], KEY)
    registry.register(*make_version("v1"))
    app = create_app(Settings(api_token=TOKEN), start_background=False, limits=limits or None)
    app.state.registry = registry
    app.dependency_overrides[get_publisher] = lambda: lambda _settings, _update: None
    return app


def test_promote_checks_the_token_before_reading_the_body(tmp_path: Path) -> None:
    counter = BodyCounter(registry_app(tmp_path))
    with TestClient(counter) as client:
        resp = client.post("/api/registry/aliases/production", content=b"{" * 500_000,
                           headers={"Content-Type": "application/json"})
        assert resp.status_code == 401
        assert counter.read == 0
        ok = client.post("/api/registry/aliases/production", json={"version": "v1"},
                         headers=AUTH)
        assert ok.status_code == 200 and ok.json()["version"] == "v1"
        bad = client.post("/api/registry/aliases/production", content=b"[", headers=AUTH)
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"


def test_a_body_over_the_cap_is_refused_even_with_the_token(tmp_path: Path) -> None:
    counter = BodyCounter(registry_app(tmp_path))
    with TestClient(counter) as client:
        resp = client.post("/api/registry/aliases/production", content=b"x" * 2_000_000,
                           headers=AUTH)
        assert resp.status_code == 413 and resp.json()["error"] == "body_too_large"
        assert counter.read == 0  # the declared length was enough to refuse it


def _drive(app: Any, scope: Scope, chunks: list[bytes]) -> tuple[int, int]:
    """Run one request through ``app``: (status, body messages the client had to send)."""
    sent: list[Message] = []
    pulled = 0

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        more = pulled < len(chunks)
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": more}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start"), pulled


def _scope(host: str = "10.0.0.1", headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {"type": "http", "method": "POST", "path": "/x", "headers": headers or [],
            "client": (host, 1234)}


async def _read_all(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def test_a_streamed_body_is_cut_off_at_the_cap() -> None:
    limits = RequestLimits(_read_all, max_body_bytes=1_000_000)
    status, pulled = _drive(limits, _scope(), [b"x" * 100_000] * 50)
    assert status == 413 and pulled == 11  # 1.1 MB read of the 5 MB, then refused
    assert _drive(limits, _scope(), [b"x" * 100_000] * 10)[0] == 200


def test_each_client_gets_a_request_rate() -> None:
    clock = Clock()
    limits = RequestLimits(_read_all, rate_per_s=2.0, burst=3, clock=clock)
    statuses = [_drive(limits, _scope(), [b""])[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert _drive(limits, _scope("10.0.0.2"), [b""])[0] == 200  # another client is not held
    clock.now += 0.5  # one token back at 2/s
    assert [_drive(limits, _scope(), [b""])[0] for _ in range(2)] == [200, 429]


def test_each_client_gets_a_bound_on_requests_in_flight() -> None:
    async def scenario() -> list[int]:
        release = asyncio.Event()

        async def slow(scope: Scope, receive: Receive, send: Send) -> None:
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        limits = RequestLimits(slow, max_concurrent=2)
        statuses: list[int] = []

        async def one(host: str = "10.0.0.1") -> None:
            async def receive() -> Message:
                return {"type": "http.request", "body": b""}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            await limits(_scope(host), receive, send)

        waiting = [asyncio.create_task(one()) for _ in range(2)]
        await asyncio.sleep(0.01)
        await one()  # the third at once: refused without waiting
        other = asyncio.create_task(one("10.0.0.9"))
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(*waiting, other)
        await one()  # the slots are free again
        return statuses

    assert asyncio.run(scenario()) == [429, 200, 200, 200, 200]


def test_the_app_applies_rate_limits_with_retry_after(tmp_path: Path) -> None:
    clock = Clock()
    with TestClient(registry_app(tmp_path, rate_per_s=1.0, burst=2, clock=clock)) as client:
        assert [client.get("/api/registry/aliases").status_code for _ in range(3)] == [
            200, 200, 429]
        resp = client.get("/api/registry/aliases")
        assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
        assert resp.json()["error"] == "rate_limited"


def test_the_dashboard_summary_is_shared_for_a_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    async def summary(client: Any) -> dict[str, Any]:
        calls.append(client.base_url)
        return {"panels": {}, "alerts": []}

    monkeypatch.setattr(api_dashboard.snapshot, "summary", summary)
    clock = Clock()
    app = create_app(Settings(prometheus_url="http://127.0.0.1:9"), start_background=False)
    app.state.summary_cache = api_dashboard.SummaryCache(ttl_s=1.5, clock=clock)
    with TestClient(app) as client:
        for _ in range(5):
            assert client.get("/api/dashboard/summary").status_code == 200
        assert len(calls) == 1
        clock.now += 1.6
        client.get("/api/dashboard/summary")
        assert len(calls) == 2


def test_answers_carry_no_passwords_or_local_paths(tmp_path: Path) -> None:
    secret = "hunter2-hunter2-hunter2"
    stores = [FileStore(tmp_path / "registry"),
              open_store(f"redis://127.0.0.1:1/0?password={secret}")]
    app = create_app(Settings(api_token=TOKEN,
                              prometheus_url=f"http://admin:{secret}@127.0.0.1:1"),
                     start_background=False)
    app.state.registry = ModelRegistry(stores, KEY)
    with TestClient(app) as client:
        answers = [client.get("/api/registry/verify"), client.get("/api/registry/versions/v9"),
                   client.post("/api/registry/verify/repair", headers=AUTH),
                   client.get("/api/dashboard/summary")]
        (tmp_path / "registry").mkdir()
        (tmp_path / "registry" / "registry.json").write_bytes(b"{}")
        (tmp_path / "registry").chmod(0o000)
        try:
            answers.append(client.get("/api/registry/aliases"))
        finally:
            (tmp_path / "registry").chmod(0o755)
    assert [a.status_code for a in answers[:2]] == [200, 404]
    assert answers[3].status_code == 503
    for answer in answers:
        assert secret not in answer.text and str(tmp_path) not in answer.text, answer.text
    assert "store:redis" in answers[0].text
