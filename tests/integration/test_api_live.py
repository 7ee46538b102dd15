"""The API against the real stack: submit a transaction, read its decision from a real worker."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from fraudstream.settings import Settings
from fraudstream.workers.pool import WorkerPool, settings_env
from fraudstream.workers.topics import ensure_topics
from tests.conftest import wait_until

pytestmark = pytest.mark.integration
TOKEN = "live-api-token-0123456789"


def call(url: str, body: bytes | None = None, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=40) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


@pytest.fixture
def api(settings: Settings) -> Iterator[str]:
    ensure_topics(settings)
    api_settings = dataclasses.replace(settings, api_port=settings.worker_web_port + 90,
                                       api_token=TOKEN)
    proc = subprocess.Popen([sys.executable, "-m", "fraudstream.cli", "api"],
                            env=settings_env(api_settings), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{api_settings.api_port}"
    try:
        wait_until(lambda: call(f"{base}/health")[0] == 200, 60,
                   f"the API did not become healthy: {call(f'{base}/health')}")
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def test_submit_then_read_the_decision(api: str, one_worker: WorkerPool) -> None:
    tx = {"transaction_id": "api-1", "timestamp": "2026-11-01T10:00:00Z", "card_id": "C42",
          "merchant_id": "M7", "amount": 42.0}
    status, body = call(f"{api}/api/transactions", json.dumps(tx).encode())
    assert status == 401, body
    status, body = call(f"{api}/api/transactions", json.dumps(tx).encode(), TOKEN)
    assert status == 202, body
    assert body["transaction_id"] == "api-1"
    status, decision = call(f"{api}/api/decisions/api-1?wait_s=30")
    assert status == 200, decision
    assert decision["decision"] in ("approve", "review", "decline")
    status, body = call(f"{api}/api/transactions", b'{"transaction_id": "api-2"}', TOKEN)
    assert status == 422 and body["error"] == "missing_field"
