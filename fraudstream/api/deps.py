"""Dependencies of the API routes: its state, its settings and the bearer-token checks."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fraudstream.loopback import is_loopback
from fraudstream.settings import Settings

if TYPE_CHECKING:
    from fraudstream.api.alerts import AlertStore
    from fraudstream.api.app import Background
    from fraudstream.api.decision_cache import DecisionCache
    from fraudstream.api.health import ApiMetrics

TOKEN_UNSET = ("mutations are disabled because no API token is configured; set "
               "FRAUDSTREAM_API_TOKEN and restart `fraudstream api`")


class Producer(Protocol):
    """What the API needs of a Kafka producer (an AIOKafkaProducer, or a fake in tests)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes | None = None,
                   key: bytes | None = None) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class ApiState:
    """Everything the routes share, kept on ``app.state.api``."""

    settings: Settings
    metrics: ApiMetrics
    decisions: DecisionCache
    alerts: AlertStore
    background: Background


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def get_settings(request: Request) -> Settings:
    return get_state(request).settings


StateDep = Annotated[ApiState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
_bearer = HTTPBearer(auto_error=False, description="the value of FRAUDSTREAM_API_TOKEN")
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def check_token(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Raise 503 if no token is configured, 401 unless ``credentials`` carry exactly it."""
    if not settings.api_token:
        raise HTTPException(503, TOKEN_UNSET)
    supplied = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(supplied.encode(), settings.api_token.encode()):
        raise HTTPException(401, "missing or wrong bearer token; send "
                            "`Authorization: Bearer <FRAUDSTREAM_API_TOKEN>`",
                            headers={"WWW-Authenticate": "Bearer"})


async def require_token(settings: SettingsDep, credentials: CredentialsDep) -> None:
    check_token(settings, credentials)


async def require_token_or_loopback(request: Request, settings: SettingsDep,
                                    credentials: CredentialsDep) -> None:
    # Alertmanager's webhook in our local stack carries no credentials, so a request from a
    # loopback address is trusted without the token (only local processes can reach it, and
    # the API binds to loopback by default); from anywhere else the token is required as for
    # every other mutation. Behind a reverse proxy on this host every client looks local:
    # do not put one in front of this endpoint.
    # A web page in the user's browser is a local process too: it can POST here (and, by
    # DNS rebinding, under a host name of its own). So the loopback trust also needs a
    # loopback Host and no Origin but our own; Alertmanager sends no Origin at all.
    if (settings.api_trust_loopback
            and request.client is not None and is_loopback(request.client.host)
            and loopback_host(request.headers.get("host", ""))
            and same_origin(request.headers.get("origin"), request.headers.get("host", ""))):
        return
    if credentials is None and request.headers.get("origin") is not None:
        raise HTTPException(403, "cross-origin requests need the bearer token")
    check_token(settings, credentials)


TokenDep = Annotated[None, Depends(require_token)]
TokenOrLoopbackDep = Annotated[None, Depends(require_token_or_loopback)]


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def loopback_host(host_header: str) -> bool:
    """True if a Host header names this machine by a loopback name or address."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":")[0]
    return host in LOOPBACK_NAMES or is_loopback(host)


def same_origin(origin: str | None, host_header: str) -> bool:
    """True without an Origin header, or when it is ``http(s)://`` + this request's Host."""
    if origin is None:
        return True
    return origin.lower() in (f"http://{host_header}".lower(), f"https://{host_header}".lower())




async def read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
