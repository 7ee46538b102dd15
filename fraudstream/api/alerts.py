"""Alertmanager's webhook receiver and the alerts it delivered, kept in memory."""

from __future__ import annotations

import collections
import time
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fraudstream.api.deps import StateDep, TokenOrLoopbackDep, read_capped

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
MAX_RECENT = 500
MAX_WEBHOOK_BYTES = 1_048_576
#: What the alert store may hold in all, and one alert at most (a real one is ~1-2 KB).
MAX_STORE_BYTES = 8 * 1_048_576
MAX_ALERT_BYTES = 32 * 1024


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
    """The last ``max_recent`` alerts received, and those currently firing (by fingerprint).

    Bounded in bytes as well as in count: 500 alerts of a 1 MiB body each would otherwise be
    500 MiB. An alert larger than ``max_alert_bytes`` keeps its status, labels and times only
    (marked ``truncated``); each of the two lists keeps at most ``max_bytes`` / 2.
    """

    def __init__(self, max_recent: int = MAX_RECENT, max_bytes: int = MAX_STORE_BYTES,
                 max_alert_bytes: int = MAX_ALERT_BYTES) -> None:
        self.max_recent = max_recent
        self.max_bytes = max_bytes
        self.max_alert_bytes = max_alert_bytes
        self._recent: collections.deque[tuple[int, dict[str, Any]]] = collections.deque()
        self._firing: collections.OrderedDict[str, tuple[int, dict[str, Any]]] = (
            collections.OrderedDict())
        self._recent_bytes = self._firing_bytes = 0

    @property
    def size_bytes(self) -> int:
        """The JSON size of everything held (the bound applies to this)."""
        return self._recent_bytes + self._firing_bytes

    def _entry(self, alert: AlertmanagerAlert, received_at: float) -> tuple[int, dict[str, Any]]:
        entry = alert.model_dump() | {"received_at": received_at}
        size = len(orjson.dumps(entry))
        if size > self.max_alert_bytes:
            entry = {"status": alert.status, "labels": alert.labels,
                     "startsAt": alert.startsAt[:64], "endsAt": alert.endsAt[:64],
                     "fingerprint": alert.fingerprint[:64], "received_at": received_at,
                     "truncated": f"{size} bytes, over the {self.max_alert_bytes}-byte limit"}
            size = len(orjson.dumps(entry))
        return size, entry

    def record(self, alert: AlertmanagerAlert, received_at: float) -> None:
        size, entry = self._entry(alert, received_at)
        if size > self.max_alert_bytes:
            return  # its labels alone are over the limit: nothing worth keeping
        key = alert.fingerprint or orjson.dumps(alert.labels, option=orjson.OPT_SORT_KEYS).decode()
        self._recent.append((size, entry))
        self._recent_bytes += size
        while self._recent and (len(self._recent) > self.max_recent
                                or self._recent_bytes > self.max_bytes // 2):
            self._recent_bytes -= self._recent.popleft()[0]
        old = self._firing.pop(key, None)
        if old is not None:
            self._firing_bytes -= old[0]
        if alert.status == "firing":
            self._firing[key] = (size, entry)
            self._firing_bytes += size
            while self._firing and (len(self._firing) > self.max_recent
                                    or self._firing_bytes > self.max_bytes // 2):
                self._firing_bytes -= self._firing.popitem(last=False)[1][0]

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Firing alerts (oldest first) and recent notifications (newest first)."""
        return {"firing": [e for _, e in self._firing.values()],
                "recent": [e for _, e in reversed(self._recent)]}


@router.post("/webhook")
async def alertmanager_webhook(request: Request, state: StateDep,
                               _auth: TokenOrLoopbackDep) -> JSONResponse:
    """Receive an Alertmanager notification; loopback callers need no token (see deps.py).

    Only ``application/json``: a web page can send ``text/plain`` across origins without a
    CORS preflight, but not JSON (and deps.py refuses foreign origins and host names).
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return JSONResponse({"error": "unsupported_media_type",
                             "reason": "send the notification as application/json"},
                            status_code=415)
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
