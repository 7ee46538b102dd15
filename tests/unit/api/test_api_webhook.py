"""The Alertmanager webhook against a web page in the user's browser, and its bounded store."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from fraudstream.api.alerts import AlertmanagerAlert, AlertStore
from fraudstream.api.app import create_app
from fraudstream.settings import Settings
from tests.unit.api.test_api import alert, webhook

TOKEN = "webhook-token-0123456789"
LOOPBACK = ("127.0.0.1", 40000)


def client(base_url: str = "http://127.0.0.1:8000", trust_loopback: bool = True,
           **kwargs: Any) -> TestClient:
    settings = Settings(api_token=TOKEN, api_trust_loopback=trust_loopback)
    app = create_app(settings, start_background=False, **kwargs)
    return TestClient(app, client=LOOPBACK, base_url=base_url)


BODY = webhook("firing", alert("firing"))


def test_alertmanager_itself_is_still_received_without_a_token() -> None:
    with client() as c:
        assert c.post("/api/alerts/webhook", json=BODY).status_code == 200
        assert len(c.get("/api/alerts").json()["firing"]) == 1


def test_without_loopback_trust_alertmanager_needs_the_token_even_from_loopback() -> None:
    with client(trust_loopback=False) as c:
        assert c.post("/api/alerts/webhook", json=BODY).status_code == 401
        assert c.get("/api/alerts").json()["recent"] == []
        assert c.post("/api/alerts/webhook", json=BODY,
                      headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert len(c.get("/api/alerts").json()["firing"]) == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", ""])
def test_bodies_a_page_can_send_without_preflight_are_refused(content_type: str) -> None:
    import orjson

    with client() as c:
        resp = c.post("/api/alerts/webhook", content=orjson.dumps(BODY),
                      headers={"Content-Type": content_type} if content_type else {})
        assert resp.status_code == 415
        assert c.get("/api/alerts").json()["recent"] == []


def test_a_foreign_origin_on_loopback_needs_the_token() -> None:
    with client() as c:
        forged = c.post("/api/alerts/webhook", json=BODY,
                        headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        assert c.post("/api/alerts/webhook", json=BODY,
                      headers={"Origin": "http://127.0.0.1:8000"}).status_code == 200
        assert c.post("/api/alerts/webhook", json=BODY, headers={
            "Origin": "https://evil.example", "Authorization": f"Bearer {TOKEN}"}
        ).status_code == 200


def test_a_rebound_host_name_gets_no_loopback_trust() -> None:
    # DNS rebinding: the page's own name now resolves to 127.0.0.1, so its requests are
    # same-origin to the browser and come from loopback; only the Host header gives it away.
    with client(base_url="http://evil.example:8000") as c:
        resp = c.post("/api/alerts/webhook", json=BODY,
                      headers={"Origin": "http://evil.example:8000"})
        assert resp.status_code == 403
        assert c.post("/api/alerts/webhook", json=BODY).status_code == 401


def test_trusted_hosts_refuse_other_host_names() -> None:
    hosts = ["127.0.0.1", "localhost", "::1", "[::1]"]
    with client(base_url="http://evil.example:8000", trusted_hosts=hosts) as c:
        assert c.get("/api/alerts").status_code == 400
    with client(base_url="http://localhost:8000", trusted_hosts=hosts) as c:
        assert c.get("/api/alerts").status_code == 200


def test_the_alert_store_is_bounded_in_bytes() -> None:
    store = AlertStore(max_recent=500, max_bytes=200_000, max_alert_bytes=8_000)
    big = "x" * 3_000
    for i in range(500):
        store.record(AlertmanagerAlert(status="firing", labels={"alertname": "A", "i": str(i)},
                                       annotations={"summary": big}, fingerprint=str(i)), 0.0)
    assert store.size_bytes <= 200_000
    snap = store.snapshot()
    assert snap["recent"][0]["fingerprint"] == "499" and len(snap["recent"]) < 500
    huge = AlertmanagerAlert(status="firing", labels={"alertname": "B"},
                             annotations={"summary": "y" * 100_000}, fingerprint="huge")
    store.record(huge, 1.0)
    kept = store.snapshot()["recent"][0]
    assert kept["fingerprint"] == "huge" and "truncated" in kept and "annotations" not in kept
    assert store.size_bytes <= 200_000
