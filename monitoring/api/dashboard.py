"""The live dashboard: the page (``GET /dashboard``) and the JSON it polls, read from Prometheus.

The browser never talks to Prometheus: these endpoints query it (at
``FRAUDSTREAM_PROMETHEUS_URL``) and answer 503 with the reason when it does not answer.
Everything here is read-only and needs no token.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from monitoring.api.deps import SettingsDep
from monitoring.dashboard import snapshot
from monitoring.dashboard.panels import PANELS, panel
from monitoring.dashboard.prometheus import PrometheusClient, PrometheusUnavailable

router = APIRouter(tags=["dashboard"])
STATIC = resources.files("monitoring.dashboard") / "static"
#: The page's files and their media types (nothing else under static/ is served).
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
UNAVAILABLE = "metrics unavailable: "
NO_STORE = {"Cache-Control": "no-store"}


def _unavailable(exc: PrometheusUnavailable) -> JSONResponse:
    return JSONResponse({"detail": UNAVAILABLE + str(exc)}, status_code=503, headers=NO_STORE)


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


@router.get("/api/dashboard/summary")
async def dashboard_summary(settings: SettingsDep) -> Response:
    """The latest value of every panel's queries and the alerts Prometheus holds; 503 if down."""
    client = PrometheusClient(settings.prometheus_base_url)
    try:
        body = await snapshot.summary(client)
    except PrometheusUnavailable as exc:
        return _unavailable(exc)
    return JSONResponse(body | {"prometheus": settings.prometheus_base_url}, headers=NO_STORE)


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
