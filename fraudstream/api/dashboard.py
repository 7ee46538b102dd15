"""The live dashboard: the page (``GET /dashboard``) and the JSON it polls, read from Prometheus.

The browser never talks to Prometheus: these endpoints query it (at
``FRAUDSTREAM_PROMETHEUS_URL``) and answer 503 with the reason when it does not answer.
Everything here is read-only and needs no token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from fraudstream.api.deps import SettingsDep
from fraudstream.monitoring.dashboard import snapshot
from fraudstream.monitoring.dashboard.panels import PANELS, panel
from fraudstream.monitoring.dashboard.prometheus import PrometheusClient, PrometheusUnavailable
from fraudstream.redaction import redact_text, redact_url

router = APIRouter(tags=["dashboard"])
STATIC = resources.files("fraudstream.monitoring.dashboard") / "static"
#: The page's files and their media types (nothing else under static/ is served).
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
UNAVAILABLE = "metrics unavailable: "
NO_STORE = {"Cache-Control": "no-store"}
#: How long one summary is shared by every caller (the page polls every few seconds).
SUMMARY_TTL_S = 1.5


def _unavailable(exc: PrometheusUnavailable) -> JSONResponse:
    return JSONResponse({"detail": UNAVAILABLE + redact_text(str(exc))}, status_code=503,
                        headers=NO_STORE)


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard_page() -> HTMLResponse:
    """The live dashboard page (static; it polls the JSON endpoints below)."""
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


@router.get("/dashboard/static/{name}")
async def dashboard_asset(name: str) -> Response:
    """The page's script and style sheet."""
    if name not in ASSETS:
        raise HTTPException(404, f"no dashboard asset {name!r}")
    return Response((STATIC / name).read_bytes(), media_type=ASSETS[name])


@router.get("/api/dashboard/panels")
async def dashboard_panels() -> dict[str, Any]:
    """Every panel: id, title, kind, unit and its PromQL queries."""
    return {"panels": [snapshot.describe(p) for p in PANELS]}


class SummaryCache:
    """The last summary (or Prometheus' failure) for ``ttl_s`` seconds, shared by callers.

    A summary costs 33 Prometheus queries; every open dashboard polls it, so without this
    N viewers (or one script in a loop) cost 33·N queries per poll. Callers arriving while
    one computes wait for its answer instead of starting their own.
    """

    def __init__(self, ttl_s: float = SUMMARY_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._entry: tuple[float, str, dict[str, Any] | PrometheusUnavailable] | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self, base_url: str) -> dict[str, Any]:
        """The summary of the Prometheus at ``base_url``; PrometheusUnavailable if down."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            entry = self._entry
            if entry is None or entry[1] != base_url or self.clock() - entry[0] > self.ttl_s:
                try:
                    value: dict[str, Any] | PrometheusUnavailable = await snapshot.summary(
                        PrometheusClient(base_url))
                except PrometheusUnavailable as exc:
                    value = exc
                entry = self._entry = (self.clock(), base_url, value)
        if isinstance(entry[2], PrometheusUnavailable):
            raise entry[2]
        return entry[2]


def summary_cache(request: Request) -> SummaryCache:
    """The app's summary cache (made on first use)."""
    state = request.app.state
    if getattr(state, "summary_cache", None) is None:
        state.summary_cache = SummaryCache()
    cache: SummaryCache = state.summary_cache
    return cache


@router.get("/api/dashboard/summary")
async def dashboard_summary(settings: SettingsDep, request: Request) -> Response:
    """The latest value of every panel's queries and the alerts Prometheus holds; 503 if down.

    Answers are shared for up to ``SUMMARY_TTL_S`` seconds.
    """
    try:
        body = await summary_cache(request).get(settings.prometheus_base_url)
    except PrometheusUnavailable as exc:
        return _unavailable(exc)
    return JSONResponse(body | {"prometheus": redact_url(settings.prometheus_base_url)},
                        headers=NO_STORE)


@router.get("/api/dashboard/series")
async def dashboard_series(settings: SettingsDep,
                           panel_id: Annotated[str, Query(alias="panel")],
                           minutes: Annotated[float, Query(ge=1, le=60)] = 5) -> Response:
    """A chart panel's series over the last ``minutes``; 404 for an unknown panel."""
    try:
        chosen = panel(panel_id)
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from exc
    client = PrometheusClient(settings.prometheus_base_url)
    try:
        body = await snapshot.series(client, chosen, minutes)
    except PrometheusUnavailable as exc:
        return _unavailable(exc)
    return JSONResponse(body, headers=NO_STORE)
