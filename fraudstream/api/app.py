"""The FastAPI application of ``fraudstream api`` and its Kafka background work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

from fastapi import FastAPI
from prometheus_client import Counter
from starlette.middleware.trustedhost import TrustedHostMiddleware

from fraudstream.api.alerts import AlertStore
from fraudstream.api.alerts import router as alerts_router
from fraudstream.api.dashboard import router as dashboard_router
from fraudstream.api.decision_cache import DecisionCache
from fraudstream.api.decisions import router as decisions_router
from fraudstream.api.deps import ApiState, Producer
from fraudstream.api.health import ApiMetrics, RequestMetrics
from fraudstream.api.health import router as health_router
from fraudstream.api.limits import RequestLimits
from fraudstream.api.registry import install as install_registry
from fraudstream.settings import Settings
from fraudstream.streaming import TopicReader, new_producer

logger = logging.getLogger(__name__)
RETRY_MAX_S = 10.0
#: How often, and how patiently, the running consumer checks that Kafka still answers (the
#: aiokafka clients retry quietly forever, so without this /health would stay green).
PROBE_INTERVAL_S = 5.0
PROBE_TIMEOUT_S = 5.0
#: Stopping flushes what the producer still holds; with Kafka down that would never end.
STOP_TIMEOUT_S = 10.0


class Background:
    """The producer for submissions and the scores reader feeding the cache, with retries.

    Nothing connects until ``start()``; until both are up, ``down()`` says what is missing.
    """

    def __init__(self, settings: Settings, decisions: DecisionCache,
                 producer: Producer | None = None, *, enabled: bool = True,
                 kafka_errors: Counter | None = None) -> None:
        self.settings = settings
        self.kafka_errors = kafka_errors
        self.decisions = decisions
        self.enabled = enabled
        self._injected = producer
        self._producer: Producer | None = None
        self._reader_running = False
        self._error = ""
        self._unreachable = ""
        self._task: asyncio.Task[None] | None = None

    def producer_for_requests(self) -> Producer | None:
        """The started producer; without background work, the injected one (caller-managed)."""
        return self._producer if self.enabled else self._injected

    def down(self) -> dict[str, str]:
        """What is not running, with a short code (and the error's type); empty when healthy.

        Anyone can read /health: the answer names no address and carries no exception text
        (those go to the log, where the operator finds them).
        """
        if not self.enabled:
            return {"background": "not_started"}
        why = "kafka_connecting" + (f" ({self._error})" if self._error else "")
        down = {}
        if self._producer is None:
            down["producer"] = why
        if not self._reader_running or self._task is None or self._task.done():
            down["scores_consumer"] = why
        elif self._unreachable:
            down["kafka"] = self._unreachable
        return down

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fraudstream-api-kafka")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await _bounded_stop(producer.stop(), "producer")

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                if self._producer is None:
                    await self._start_producer()
                await self._follow_scores()
            except Exception as exc:
                if self.kafka_errors is not None:
                    self.kafka_errors.labels("background").inc()
                if not self._error:  # it was working until now: retry soon
                    delay = 0.5
                self._error = type(exc).__name__
                logger.warning("Kafka background work failed bootstrap=%s error=%s: %s; "
                               "retrying in %.1fs", self.settings.kafka_bootstrap,
                               self._error, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _start_producer(self) -> None:
        producer = self._injected or new_producer(self.settings)
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer

    async def _follow_scores(self) -> None:
        topic = self.settings.topic_scores
        reader = TopicReader(self.settings, [topic], from_beginning=False)
        probe: asyncio.Task[None] | None = None
        try:
            await reader.start()
            # Its assignment: a missing topic leaves it empty, reading nothing, forever,
            # while looking healthy.
            consumer = reader.consumer
            partitions = list(consumer.assignment())
            if not partitions:
                raise RuntimeError(f"topic {topic!r} does not exist; run "
                                   "`fraudstream topics create`")
            self._reader_running = True
            self._error = self._unreachable = ""
            probe = asyncio.create_task(self._probe(consumer, partitions))
            logger.info("following %s from its end", topic)
            while True:
                for _topic, _key, value, _ts in await reader.poll(0.5):
                    self.decisions.feed(value)
        finally:
            self._reader_running = False
            if probe is not None:
                probe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probe
            await _bounded_stop(reader.stop(), "scores reader")

    async def _probe(self, consumer: Any, partitions: list[Any]) -> None:
        """Keep ``_unreachable`` saying whether Kafka answered the last ListOffsets request."""
        while True:
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    await consumer.end_offsets(partitions)
                self._unreachable = ""
            except Exception as exc:
                if self.kafka_errors is not None:
                    self.kafka_errors.labels("probe").inc()
                self._unreachable = f"kafka_unreachable ({type(exc).__name__})"
                logger.warning("Kafka did not answer bootstrap=%s within_s=%.0f error=%r",
                               self.settings.kafka_bootstrap, PROBE_TIMEOUT_S, exc)
            await asyncio.sleep(PROBE_INTERVAL_S)


async def _bounded_stop(stopping: Awaitable[None], what: str) -> None:
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await stopping
    except TimeoutError:
        logger.warning("the %s did not stop within %.0fs (Kafka unreachable?); abandoning it, "
                       "unconfirmed submissions may be lost", what, STOP_TIMEOUT_S)


def create_app(settings: Settings, *, producer: Producer | None = None,
               decisions: DecisionCache | None = None,
               start_background: bool = True,
               limits: dict[str, Any] | None = None,
               trusted_hosts: Sequence[str] | None = None) -> FastAPI:
    """The API; Kafka is only touched in its lifespan, and only if ``start_background``.

    ``limits`` overrides the keyword arguments of ``RequestLimits`` (body size, rate...).
    ``trusted_hosts``: the Host names answered (400 for others, which stops DNS rebinding:
    a web page whose own name resolves to 127.0.0.1); None answers any.
    """
    cache = decisions if decisions is not None else DecisionCache()
    metrics = ApiMetrics.create(lambda: len(cache))
    background = Background(settings, cache, producer, enabled=start_background,
                            kafka_errors=metrics.kafka_errors)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start_background:
            await background.start()
        try:
            yield
        finally:
            await background.stop()

    app = FastAPI(title="fraudstream API", lifespan=lifespan,
                  summary="Submit card transactions, read their decisions, receive alerts.")
    app.state.api = ApiState(settings, metrics, cache, AlertStore(), background)
    app.add_middleware(RequestMetrics, metrics=metrics)
    if trusted_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(trusted_hosts))
    # Added last, so outermost: limits apply before anything else reads the request.
    app.add_middleware(RequestLimits, **(limits or {}))
    for router in (health_router, decisions_router, alerts_router, dashboard_router):
        app.include_router(router)
    install_registry(app)
    return app
