"""The page keeps polling after an answer it cannot draw (no services: the browser's requests
are answered by the test itself)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from fraudstream.api.dashboard import ASSETS, STATIC
from fraudstream.monitoring.dashboard import snapshot
from fraudstream.monitoring.dashboard.panels import PANELS
from fraudstream.monitoring.dashboard.prometheus import Sample
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


class EmptyPrometheus:
    """Answers every query with no series and holds no alerts."""

    async def query(self, expr: str) -> list[Sample]:
        return []

    async def query_range(self, expr: str, start: float, end: float,
                          step: float) -> list[Any]:
        return []

    async def alerts(self) -> list[dict[str, Any]]:
        return []


# Made at import: inside the test Playwright's own event loop is running.
GOOD = asyncio.run(snapshot.summary(EmptyPrometheus(), now=1_700_000_000.0))


def test_the_page_keeps_polling_after_an_answer_it_cannot_draw(browser: Any) -> None:
    good = GOOD
    # What used to stop the page for good: a summary whose panels are missing (a TypeError in
    # the first panel drawn), then one where only one panel has an unexpected shape.
    broken = {"time": 1_700_000_000.0, "panels": {}, "alerts": []}
    one_bad = json.loads(json.dumps(good))
    stat = next(p.id for p in PANELS if p.kind == "stat")
    one_bad["panels"][stat] = {"queries": "not a list"}
    answers = [broken, one_bad]
    served: list[str] = []

    def answer(route: Any) -> None:
        path = urlsplit(route.request.url).path
        if path == "/dashboard":
            route.fulfill(body=(STATIC / "index.html").read_text(), content_type="text/html")
        elif path.startswith("/dashboard/static/") and path.rsplit("/", 1)[1] in ASSETS:
            name = path.rsplit("/", 1)[1]
            route.fulfill(body=(STATIC / name).read_bytes(), content_type=ASSETS[name])
        elif path == "/api/dashboard/panels":
            route.fulfill(json={"panels": [snapshot.describe(p) for p in PANELS]})
        elif path == "/api/dashboard/summary":
            body = answers.pop(0) if answers else good
            served.append("broken" if body is broken else "one_bad" if body is one_bad
                          else "good")
            route.fulfill(json=body)
        else:  # the chart series: not needed here
            route.fulfill(status=503, json={"detail": "metrics unavailable: test"})

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route("**/*", answer)
    body = page.locator("body")
    try:
        page.goto("http://dashboard.test/dashboard")
        def pumped(check: Any) -> Any:
            # The sync API answers routes only while it is called: let it run a moment.
            return lambda: (page.wait_for_timeout(100), check())[1]

        wait_until(pumped(lambda: served[:2] == ["broken", "one_bad"]), 30,
                   f"the page stopped polling after the broken answer (served {served})")
        wait_until(pumped(lambda: "good" in served
                          and body.get_attribute("data-state") == "live"),
                   30, f"the page never went live again (served {served})")
        assert page.locator(".panel.failed").count() == 0
        assert page.locator(".panel.stale").count() == 0
        assert int(body.get_attribute("data-updates") or "0") >= 2
        assert errors == []  # every error was caught and the page said so instead
    finally:
        context.close()
