"""Health and Prometheus metrics of the API: the /health and /metrics routes and their counters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fraudstream.api.deps import StateDep

router = APIRouter(tags=["health"])


@dataclass(frozen=True)
class ApiMetrics:
    """The API's metrics, in a registry of its own (never the process-global one)."""

    registry: CollectorRegistry
    requests: Counter
    submitted: Counter
    decisions_cached: Gauge
    alerts_received: Counter
    kafka_errors: Counter

    @classmethod
    def create(cls, cached: Callable[[], float]) -> ApiMetrics:
        """Build the metrics; ``cached`` reports the decision cache's size at scrape time."""
        reg = CollectorRegistry()
        ProcessCollector(registry=reg)  # process CPU seconds and memory bytes
        gauge = Gauge("fraudstream_api_decisions_cached", "Decisions held in the API's cache",
                      registry=reg)
        gauge.set_function(cached)
        return cls(
            registry=reg,
            requests=Counter("fraudstream_api_requests", "HTTP requests by route template and "
                             "status", ["route", "status"], registry=reg),
            submitted=Counter("fraudstream_api_transactions_submitted", "Transactions accepted "
                              "and acknowledged by Kafka", registry=reg),
            decisions_cached=gauge,
            alerts_received=Counter("fraudstream_api_alerts_received", "Alertmanager alerts "
                                    "received, by status", ["status"], registry=reg),
            kafka_errors=Counter("fraudstream_api_kafka_errors", "Failures of the API's Kafka "
                                 "work (producer start, scores reader, reachability probe), by "
                                 "operation", ["operation"], registry=reg),
        )


class RequestMetrics:
    """ASGI middleware counting requests by route template (bounded) and status code."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route=route, status=str(status)).inc()


@router.get("/health")
async def health(state: StateDep) -> JSONResponse:
    """200 only when the scores consumer and the producer are running; 503 says what is down."""
    down = state.background.down()
    if down:
        return JSONResponse({"status": "unavailable", "down": down}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    """Prometheus exposition of the API's own registry."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
