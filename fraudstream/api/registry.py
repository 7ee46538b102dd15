"""The model registry over HTTP: reads are open, promotions and repairs need the API token.

Registry errors become ``{"error": code, "reason": message}`` with the status their code maps
to in ``model_registry.errors`` (the one place that mapping lives).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from fraudstream.api.deps import SettingsDep, TokenDep, read_capped
from fraudstream.model_registry.errors import RegistryError, http_status
from fraudstream.model_registry.registry import ALIASES, ModelRegistry
from fraudstream.model_registry.stores import store_labels
from fraudstream.model_registry.updates import ModelUpdate, publish_update
from fraudstream.redaction import redact_text
from fraudstream.settings import Settings

router = APIRouter(prefix="/api/registry", tags=["registry"])

Publisher = Callable[[Settings, ModelUpdate], None]
#: A promotion body is one short version name.
MAX_PROMOTE_BYTES = 4096


class PromoteRequest(BaseModel):
    """Point an alias at this version (or at what another alias points at)."""

    version: str = Field(max_length=256)


class PromotionPublic(BaseModel):
    alias: str
    version: str
    previous: str | None
    generation: int
    missed_stores: list[str]


class AliasesPublic(BaseModel):
    aliases: dict[str, str | None]
    history: dict[str, list[str]]
    generation: int


class VerifyReportPublic(BaseModel):
    ok: bool
    generation: int
    versions: int
    stores: dict[str, str]
    problems: list[dict[str, Any]]


def get_registry(request: Request) -> ModelRegistry:
    """The app's registry (built from its settings on first use; tests may set their own)."""
    state = request.app.state
    if getattr(state, "registry", None) is None:
        settings: Settings = state.api.settings
        state.registry = ModelRegistry.of(settings)
    registry: ModelRegistry = state.registry
    return registry


def announce(settings: Settings, update: ModelUpdate) -> None:
    """Publish an update on the model-updates topic (blocking)."""
    publish_update(settings, settings.topic_model_updates, update)


def get_publisher() -> Publisher:
    return announce


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]


def public(registry: ModelRegistry, value: Any) -> Any:
    """``value`` with every store URI replaced by the store's label (``file``, ``redis-2``).

    A URI can carry a password (``?password=``, ``:pw@``) and a file store's URI is an
    absolute path of this machine: neither belongs in an answer to a remote caller.
    """
    names = sorted(((s.uri, f"store:{label}") for s, label in
                    zip(registry.stores, store_labels(registry.stores), strict=True)),
                   key=lambda pair: -len(pair[0]))

    def scrub(item: Any) -> Any:
        if isinstance(item, str):
            for uri, label in names:
                item = item.replace(uri, label)
            return item
        if isinstance(item, dict):
            return {scrub(k): scrub(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [scrub(v) for v in item]
        return item

    return scrub(value)


@router.get("/versions")
def list_versions(registry: RegistryDep) -> list[dict[str, Any]]:
    """Every version, oldest first, with its aliases."""
    rows: list[dict[str, Any]] = registry.list_versions()
    return rows


@router.get("/versions/{ref}")
def show_version(ref: str, registry: RegistryDep) -> dict[str, Any]:
    """A version's manifest (``ref``: a version or an alias) and each replica's health."""
    body: dict[str, Any] = public(registry, registry.show(ref))
    return body


@router.get("/aliases")
def aliases(registry: RegistryDep) -> AliasesPublic:
    """What each alias points at, and its promotion history."""
    st = registry.state()
    return AliasesPublic(aliases={a: st.aliases.get(a) for a in ALIASES},
                         history={a: st.history.get(a, []) for a in ALIASES},
                         generation=st.generation)


@router.get("/verify")
def verify(registry: RegistryDep) -> VerifyReportPublic:
    """Check every replica and the registry state in every store (no repair)."""
    return _report(registry, registry.verify(repair=False))


@router.post("/verify/repair")
def repair(registry: RegistryDep, _auth: TokenDep) -> VerifyReportPublic:
    """Verify, and copy good replicas over missing or divergent ones."""
    return _report(registry, registry.verify(repair=True))


@router.post("/aliases/{alias}", response_model=PromotionPublic, openapi_extra={
    "requestBody": {"required": True, "content": {"application/json": {
        "schema": PromoteRequest.model_json_schema()}}}})
async def promote(alias: str, request: Request, registry: RegistryDep,
                  settings: SettingsDep, publisher: PublisherDep,
                  _auth: TokenDep) -> PromotionPublic | JSONResponse:
    """Point ``alias`` at a version once it loads and verifies; announce it to the workers.

    The body (``{"version": ...}``) is read only after the token checked out, and only up to
    a few KB: declared as a body parameter, FastAPI would read and parse it first.
    """
    from fraudstream.features import FEATURE_NAMES

    raw = await read_capped(request, MAX_PROMOTE_BYTES)
    if raw is None:
        return JSONResponse({"error": "body_too_large", "reason": "the body is over "
                             f"{MAX_PROMOTE_BYTES} bytes"}, status_code=413)
    try:
        body = PromoteRequest.model_validate_json(raw)
    except ValidationError:
        return JSONResponse({"error": "invalid_request", "reason": 'send {"version": "<a '
                             'version or alias>"} as JSON'}, status_code=422)
    done = await run_in_threadpool(registry.promote, body.version, alias, FEATURE_NAMES)
    await run_in_threadpool(publisher, settings,
                            ModelUpdate(done.alias, done.version, done.generation))
    return PromotionPublic(**public(registry, vars(done)))


@router.post("/aliases/{alias}/rollback")
async def rollback(alias: str, registry: RegistryDep, settings: SettingsDep,
                   publisher: PublisherDep, _auth: TokenDep) -> PromotionPublic:
    """Point ``alias`` back at its previous version; announce it to the workers."""
    from fraudstream.features import FEATURE_NAMES

    done = await run_in_threadpool(registry.rollback, alias, FEATURE_NAMES)
    await run_in_threadpool(publisher, settings,
                            ModelUpdate(done.alias, done.version, done.generation))
    return PromotionPublic(**public(registry, vars(done)))


def _report(registry: ModelRegistry, report: Any) -> VerifyReportPublic:
    return VerifyReportPublic(ok=report.ok, generation=report.generation,
                              versions=report.versions, stores=public(registry, report.stores),
                              problems=public(registry, [vars(p) for p in report.problems]))


async def registry_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RegistryError)
    reason = str(exc)
    registry = getattr(request.app.state, "registry", None)
    if registry is not None:
        reason = public(registry, reason)
    return JSONResponse({"error": exc.code, "reason": redact_text(reason)},
                        status_code=http_status(exc))


def install(app: FastAPI) -> None:
    """Add the registry routes and the error mapping to ``app``."""
    app.include_router(router)
    app.add_exception_handler(RegistryError, registry_error)
