"""Alertmanager's webhook receiver and the alerts it delivered, kept in memory."""

from __future__ import annotations

import collections
import time
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitoring.api.deps import StateDep, TokenOrLoopbackDep, read_capped

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
MAX_RECENT = 500
MAX_WEBHOOK_BYTES = 1_048_576


class AlertmanagerAlert(BaseModel):
    """One alert of an Alertmanager webhook notification (unknown fields are kept)."""

    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = ""


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook body (version 4); only status and alerts are required."""

    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    alerts: list[AlertmanagerAlert]


class AlertStore:
    """The last ``max_recent`` alerts received, and those currently firing (by fingerprint)."""

    def __init__(self, max_recent: int = MAX_RECENT) -> None:
        self.max_recent = max_recent
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_recent)
        self._firing: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def record(self, alert: AlertmanagerAlert, received_at: float) -> None:
        entry = alert.model_dump() | {"received_at": received_at}
        key = alert.fingerprint or orjson.dumps(alert.labels, option=orjson.OPT_SORT_KEYS).decode()
        self._recent.append(entry)
        self._firing.pop(key, None)
        if alert.status == "firing":
            self._firing[key] = entry
            while len(self._firing) > self.max_recent:
                self._firing.popitem(last=False)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Firing alerts (oldest first) and recent notifications (newest first)."""
        return {"firing": list(self._firing.values()), "recent": list(reversed(self._recent))}


@router.post("/webhook")
async def alertmanager_webhook(request: Request, state: StateDep,
                               _auth: TokenOrLoopbackDep) -> JSONResponse:
    """Receive an Alertmanager notification; loopback callers need no token (see deps.py)."""
    raw = await read_capped(request, MAX_WEBHOOK_BYTES)
    if raw is None:
        return JSONResponse({"detail": f"body over {MAX_WEBHOOK_BYTES} bytes"}, status_code=413)
    try:
        body = AlertmanagerWebhook.model_validate_json(raw)
    except ValidationError as exc:
        return JSONResponse({"detail": "not an Alertmanager webhook body",
                             "errors": exc.errors(include_url=False, include_input=False,
                                                  include_context=False)},
                            status_code=422)
    now = time.time()
    for alert in body.alerts:
        state.alerts.record(alert, now)
        state.metrics.alerts_received.labels(status=alert.status).inc()
    return JSONResponse({"received": len(body.alerts)})


@router.get("")
async def list_alerts(state: StateDep) -> dict[str, list[dict[str, Any]]]:
    """Alerts firing now and the last 500 received."""
    return state.alerts.snapshot()
