"""Limits every request meets before any route sees it: body size, rate and concurrency.

One client must not be able to exhaust the API: a 200 MiB body sent to a promotion endpoint
was read whole (and parsed) before the token was even checked, raising the process' memory by
800 MiB. Here every body is cut off at ``max_body_bytes`` while it streams in (a declared
``Content-Length`` over it is refused before a byte is read), and each client (by address)
gets a token bucket of requests and a bound on requests in flight; over either it gets 429
with ``Retry-After``. The client table is bounded too (least recently seen evicted).
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Largest request body of any route (an Alertmanager notification is the largest we take;
#: a transaction is capped lower, at FRAUDSTREAM_MAX_MESSAGE_BYTES, by its route).
MAX_BODY_BYTES = 1_048_576
#: Per client: sustained requests per second, the burst above it, and requests in flight.
#: The dashboard polls a few endpoints every few seconds; a scripted client submitting
#: transactions one per request is the heaviest honest user.
RATE_PER_S = 100.0
BURST = 200
MAX_CONCURRENT = 32
MAX_CLIENTS = 10_000


class BodyTooLarge(HTTPException):
    """The request body went over the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the {limit}-byte limit")


@dataclass
class _Client:
    tokens: float
    refilled_at: float
    in_flight: int = 0


class RequestLimits:
    """ASGI middleware enforcing the limits above on every HTTP request."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = MAX_BODY_BYTES,
                 rate_per_s: float = RATE_PER_S, burst: int = BURST,
                 max_concurrent: int = MAX_CONCURRENT, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_concurrent = max_concurrent
        self.max_clients = max_clients
        self.clock = clock
        self._clients: collections.OrderedDict[str, _Client] = collections.OrderedDict()

    def _client(self, host: str) -> _Client:
        now = self.clock()
        client = self._clients.get(host)
        if client is None:
            client = self._clients[host] = _Client(float(self.burst), now)
            while len(self._clients) > self.max_clients:
                # Never evict one with requests in flight: its counter must come back down.
                oldest, entry = next(iter(self._clients.items()))
                self._clients.pop(oldest)
                if entry.in_flight:
                    self._clients[oldest] = entry
                    break
        else:
            self._clients.move_to_end(host)
            client.tokens = min(float(self.burst),
                                client.tokens + (now - client.refilled_at) * self.rate_per_s)
            client.refilled_at = now
        return client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = (scope.get("client") or ("unknown", 0))[0]
        client = self._client(host)
        if client.tokens < 1.0:
            wait = (1.0 - client.tokens) / self.rate_per_s
            await _refuse(send, 429, "rate_limited", f"over {self.rate_per_s:g} requests/s "
                          "from this client", retry_after=wait)
            return
        if client.in_flight >= self.max_concurrent:
            await _refuse(send, 429, "too_many_concurrent", f"over {self.max_concurrent} "
                          "requests in flight from this client", retry_after=1.0)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(send, 413, "body_too_large",
                          f"request body over the {self.max_body_bytes}-byte limit")
            return
        client.tokens -= 1.0
        client.in_flight += 1
        started = False
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _refuse(send, 413, "body_too_large",
                          f"request body over the {self.max_body_bytes}-byte limit")
        finally:
            client.in_flight -= 1


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _refuse(send: Send, status: int, code: str, reason: str,
                  retry_after: float | None = None) -> None:
    body = orjson.dumps({"error": code, "reason": reason})
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
