"""The page when Prometheus stops answering: it says so, and goes live again when it is back."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from fraudstream.deploy.local import LocalStack
from fraudstream.settings import Settings
from tests.conftest import wait_until
from tests.e2e.conftest import ApiServer
from tests.stack_fixtures import BASE_PORT

pytestmark = pytest.mark.e2e


def summary_status(api: ApiServer) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{api.url}/api/dashboard/summary", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def api(base_settings: Settings) -> Iterator[ApiServer]:
    settings = dataclasses.replace(base_settings, api_port=BASE_PORT + 301)
    server = ApiServer(settings, settings.state_dir / "logs" / "api-e2e-unavailable.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        print(f"--- API log tail\n{server.log_tail()}")


def test_prometheus_down_shows_metrics_unavailable_then_recovers(
        stack: LocalStack, api: ApiServer, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    state = page.locator("body")
    banner = page.locator("#unavailable")
    try:
        page.goto(f"{api.url}/dashboard")
        wait_until(lambda: state.get_attribute("data-state") == "live", 60,
                   "the page never went live")
        assert banner.is_hidden()
        stack.prometheus.process.stop()
        try:
            wait_until(lambda: state.get_attribute("data-state") == "unavailable", 30,
                       "the page did not notice that Prometheus stopped")
            assert banner.is_visible()
            expected = (f"metrics unavailable: Prometheus at {api.settings.prometheus_base_url} "
                        "did not answer")
            assert banner.inner_text().startswith(expected), banner.inner_text()
            assert page.locator("#status").inner_text() == "metrics unavailable"
            status, body = summary_status(api)
            assert status == 503 and body["detail"].startswith(expected), body
        finally:
            stack.up(("prometheus",))
        wait_until(lambda: state.get_attribute("data-state") == "live", 60,
                   "the page did not go live again once Prometheus was back")
        assert banner.is_hidden()
        assert page.locator(".panel.stale").count() == 0
    finally:
        context.close()
