"""The model registry: versions replicated over several artifact stores, aliases, promotion.

Every version is written (skops bytes + signed manifest) to every store and needs at least
``min_replicas`` copies to exist at all. The registry's own state (the index of versions, the
``production`` and ``shadow`` aliases and their promotion history) is a signed JSON document
kept in every store; reads take the newest valid generation, so one store being down, stale
or tampered with changes nothing. ``verify(repair=True)`` puts divergent copies right.

Nothing read from a store is trusted: a replica is used only after its manifest signature and
its bytes' SHA-256 check out, and skops only rebuilds allowed types. Concurrent writers are
not coordinated (last writer wins); promotions are rare and made by people or one CI job.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fraudstream.model_registry.artifact import (
    TRUSTED_TYPES,
    ArtifactError,
    LoadedModel,
    ModelManifest,
    deserialise,
    manifest_from_json,
    sign_manifest,
)
from fraudstream.model_registry.documents import (
    MalformedDocument,
    checked_fields,
    dict_of,
    is_int,
    is_number,
    is_str,
    list_of,
    load_json,
)
from fraudstream.model_registry.errors import (
    InvalidRequest,
    ModelRefused,
    NotFound,
    RegistryError,
    StoreUnavailable,
)
from fraudstream.model_registry.stores import ArtifactStore, open_stores

if TYPE_CHECKING:
    from fraudstream.settings import Settings

logger = logging.getLogger(__name__)

ALIASES = ("production", "shadow")
STATE_KEY = "registry.json"
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def model_key(version: str) -> str:
    return f"versions/{version}/model.skops"


def manifest_key(version: str) -> str:
    return f"versions/{version}/manifest.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RegistryState:
    """The registry's index, aliases and history (one signed document, kept in every store)."""

    generation: int = 0
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[str]] = field(default_factory=dict)
    updated_at: str = ""
    signature: str = ""

    def payload(self) -> bytes:
        body = asdict(self)
        body.pop("signature")
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, key: bytes) -> RegistryState:
        self.signature = hmac.new(key, self.payload(), hashlib.sha256).hexdigest()
        return self

    def valid(self, key: bytes) -> bool:
        expected = hmac.new(key, self.payload(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.signature)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RegistryState:
        """The state ``data`` holds; MalformedDocument unless every field has its type."""
        body = checked_fields(load_json(data), {
            "generation": is_int, "versions": _versions,
            "aliases": dict_of(is_str), "history": dict_of(list_of(is_str)),
            "updated_at": is_str, "signature": is_str})
        return cls(**body)

    def aliases_of(self, version: str) -> list[str]:
        return sorted(a for a, v in self.aliases.items() if v == version)


def _versions(index: Any) -> bool:
    """True if ``index`` maps valid version names (they become store keys) to entries."""
    return dict_of(_version_entry)(index) and all(VERSION_RE.match(k) for k in index)


def _version_entry(entry: Any) -> bool:
    """True if ``entry`` is a version's index entry (the fields ``register`` writes)."""
    try:
        checked_fields(entry, {"sha256": is_str}, {
            "family": is_str, "created_at": is_str, "registered_at": is_str,
            "metrics": dict_of(is_number)})
    except MalformedDocument:
        return False
    return True


@dataclass(frozen=True)
class StoreState:
    """What one store holds of the registry state: the state, or why it could not be used."""

    store: ArtifactStore
    state: RegistryState | None
    error: str = ""

    @property
    def up(self) -> bool:
        return not self.error.startswith("down")


@dataclass(frozen=True)
class Loaded:
    """A verified model and the store its bytes came from."""

    model: LoadedModel
    store_uri: str
    seconds: float


@dataclass(frozen=True)
class Promotion:
    """The outcome of a promote or rollback."""

    alias: str
    version: str
    previous: str | None
    generation: int
    missed_stores: list[str]


@dataclass
class Problem:
    """A divergence found by ``verify``: what, where, and whether it was repaired."""

    store: str
    version: str | None
    problem: str
    repaired: bool = False


@dataclass
class VerifyReport:
    """The outcome of ``verify``."""

    generation: int
    stores: dict[str, str]
    versions: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        """True when nothing is left unrepaired."""
        return all(p.repaired for p in self.problems)


class ModelRegistry:
    """Versions, aliases and promotion over replicated artifact stores."""

    def __init__(self, stores: Sequence[ArtifactStore], key: bytes,
                 min_replicas: int = 2) -> None:
        if not stores:
            raise InvalidRequest("a registry needs at least one store")
        self.stores = list(stores)
        self.key = key
        self.min_replicas = min(min_replicas, len(self.stores))

    @classmethod
    def of(cls, settings: Settings) -> ModelRegistry:
        """The registry over the stores and with the signing key of ``settings`` (no I/O)."""
        return cls(open_stores(settings.model_store_uris, settings),
                   settings.signing_key.encode())

    def _need_key(self) -> None:
        if not self.key:
            raise InvalidRequest("no signing key: set FRAUDSTREAM_SIGNING_KEY to sign and "
                                 "verify models")

    # --- state ---------------------------------------------------------------------------

    def read_states(self) -> list[StoreState]:
        """The registry state as each store holds it (or why it cannot be used)."""
        self._need_key()
        out = []
        for store in self.stores:
            try:
                raw = store.get(STATE_KEY)
            except StoreUnavailable as exc:
                out.append(StoreState(store, None, f"down: {exc}"))
                continue
            if raw is None:
                out.append(StoreState(store, None, "no registry state"))
                continue
            out.append(self._check_state(store, raw))
        return out

    def _check_state(self, store: ArtifactStore, raw: bytes) -> StoreState:
        """One store's state if it parses, has its types and its signature checks out.

        Any failure at all marks only this store's copy invalid: the others still serve.
        """
        try:
            state = RegistryState.from_bytes(raw)
        except MalformedDocument as exc:
            return StoreState(store, None, f"unreadable registry state ({exc})")
        try:
            valid = state.valid(self.key)
        except Exception as exc:  # whatever a hostile document makes the check raise
            logger.warning("registry state check failed store=%s error=%s", store.uri,
                           type(exc).__name__)
            valid = False
        if not valid:
            return StoreState(store, None, "registry state has a bad signature")
        return StoreState(store, state)

    def state(self) -> RegistryState:
        """The newest valid state any store holds; StoreUnavailable if every store is down."""
        return self.reconcile(self.read_states())

    @staticmethod
    def reconcile(states: list[StoreState]) -> RegistryState:
        """The newest valid state of ``states`` (see ``state``)."""
        valid = [s.state for s in states if s.state is not None]
        if valid:
            return max(valid, key=lambda s: s.generation)
        if not any(s.up for s in states):
            raise StoreUnavailable("no model store answered: " + "; ".join(
                s.error for s in states))
        invalid = [s.error for s in states if s.up and s.error != "no registry state"]
        if invalid:
            raise ModelRefused("no store holds a valid registry state (" + "; ".join(invalid)
                               + "); check FRAUDSTREAM_SIGNING_KEY, or restore a store",
                               "signature")
        return RegistryState()

    def _write_state(self, state: RegistryState) -> list[str]:
        """Write ``state`` as the next generation to every store; the URIs it missed."""
        state.generation += 1
        state.updated_at = _now()
        data = state.signed(self.key).to_bytes()
        missed = []
        for store in self.stores:
            try:
                store.put(STATE_KEY, data)
            except StoreUnavailable as exc:
                logger.warning("registry state not written store=%s error=%s", store.uri, exc)
                missed.append(store.uri)
        if len(missed) == len(self.stores):
            raise StoreUnavailable("no model store took the registry state: " +
                                   ", ".join(missed))
        return missed

    # --- reads ---------------------------------------------------------------------------

    def resolve(self, ref: str, state: RegistryState | None = None) -> str:
        """The version ``ref`` names: an alias, or a version itself."""
        st = state or self.state()
        if ref in ALIASES:
            version = st.aliases.get(ref)
            if version is None:
                raise NotFound(f"alias {ref!r} points at no version yet; promote one first "
                               f"(`fraudstream registry promote VERSION --alias {ref}`)")
            return version
        if ref in st.versions:
            return ref
        known = ", ".join(sorted(st.versions)[-5:]) or "none"
        raise NotFound(f"unknown version or alias {ref!r} (aliases: {', '.join(ALIASES)}; "
                       f"latest versions: {known})")

    def list_versions(self) -> list[dict[str, Any]]:
        """Every version, oldest first, with the aliases pointing at it."""
        st = self.state()
        rows = []
        for version, entry in sorted(st.versions.items(),
                                     key=lambda kv: (kv[1].get("registered_at", ""), kv[0])):
            rows.append({"version": version, **entry, "aliases": st.aliases_of(version)})
        return rows

    def show(self, ref: str) -> dict[str, Any]:
        """A version's manifest (from a verified replica), aliases and replica health."""
        st = self.state()
        version = self.resolve(ref, st)
        manifest, replicas = None, {}
        for store in self.stores:
            try:
                found = self._check_replica(store, version, st.versions[version])
                manifest = manifest or found
                replicas[store.uri] = "ok"
            except (ModelRefused, StoreUnavailable) as exc:
                replicas[store.uri] = str(exc)
        if manifest is None:
            detail = "; ".join(replicas.values())
            raise ModelRefused(f"version {version}: no valid replica ({detail})", "load_error")
        body = asdict(manifest)
        body.pop("signature")
        return {"version": version, "aliases": st.aliases_of(version),
                "registered_at": st.versions[version].get("registered_at", ""),
                "manifest": body, "replicas": replicas}

    def history(self, alias: str) -> list[str]:
        """Versions promoted to ``alias``, oldest first; the last one is current."""
        _check_alias(alias)
        return list(self.state().history.get(alias, []))

    # --- replicas ------------------------------------------------------------------------

    def _check_replica(self, store: ArtifactStore, version: str, entry: dict[str, Any],
                       data_out: list[bytes] | None = None) -> ModelManifest:
        """The verified manifest of one replica; ModelRefused/StoreUnavailable otherwise."""
        where = f"{version} on {store.uri}"
        raw_manifest = store.get(manifest_key(version))
        if raw_manifest is None:
            raise ModelRefused(f"{where}: manifest missing", "load_error")
        try:
            manifest = manifest_from_json(raw_manifest)
        except MalformedDocument as exc:
            raise ModelRefused(f"{where}: unreadable manifest ({exc})", "signature") from exc
        try:
            expected = sign_manifest(manifest, self.key).signature
            signed_ok = hmac.compare_digest(expected, manifest.signature)
        except Exception as exc:  # a hostile manifest must not escape as a crash
            raise ModelRefused(f"{where}: manifest cannot be checked ({type(exc).__name__})",
                               "signature") from exc
        if not signed_ok:
            raise ModelRefused(f"{where}: bad manifest signature (altered, or signed with "
                               "another key)", "signature")
        if manifest.version != version or manifest.sha256 != entry.get("sha256"):
            raise ModelRefused(f"{where}: manifest belongs to another version", "checksum")
        data = store.get(model_key(version))
        if data is None:
            raise ModelRefused(f"{where}: model bytes missing", "load_error")
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest.sha256:
            raise ModelRefused(f"{where}: checksum mismatch (sha256 {digest[:12]}…, manifest "
                               f"{manifest.sha256[:12]}…): corrupt or replaced", "checksum")
        if data_out is not None:
            data_out.append(data)
        return manifest

    def load(self, ref: str, expected_features: Sequence[str] | None = None) -> Loaded:
        """A verified, deserialised version, from the first store whose replica checks out.

        A store that is down or whose copy is corrupt is skipped for the next one.
        """
        self._need_key()
        started = time.perf_counter()
        st = self.state()
        version = self.resolve(ref, st)
        entry = st.versions[version]
        failures: list[RegistryError] = []
        for store in self.stores:
            try:
                data: list[bytes] = []
                manifest = self._check_replica(store, version, entry, data)
                model = _deserialise(data[0], manifest, f"{version} on {store.uri}",
                                     expected_features)
            except (ModelRefused, StoreUnavailable) as exc:
                logger.warning("replica skipped version=%s store=%s error=%s", version,
                               store.uri, exc)
                failures.append(exc)
                continue
            return Loaded(model, store.uri, time.perf_counter() - started)
        refused = [f for f in failures if isinstance(f, ModelRefused)]
        message = f"version {version}: no replica could be loaded: " + "; ".join(
            str(f) for f in failures)
        if not refused:
            raise StoreUnavailable(message)
        # The most telling reason: a tampered copy says more than a missing one.
        reasons = [f.reason for f in refused]
        reason = next((r for r in ModelRefused.REASONS if r in reasons), "load_error")
        raise ModelRefused(message, reason, retriable=len(refused) < len(failures))

    # --- writes --------------------------------------------------------------------------

    def register(self, model_bytes: bytes, manifest: ModelManifest) -> ModelManifest:
        """Sign and write a new version to every store (at least ``min_replicas`` copies).

        With fewer copies the ones written are removed again and StoreUnavailable is raised:
        a version exists completely or not at all.
        """
        self._need_key()
        if not VERSION_RE.match(manifest.version):
            raise InvalidRequest(f"bad version name {manifest.version!r}")
        if hashlib.sha256(model_bytes).hexdigest() != manifest.sha256:
            raise InvalidRequest("manifest sha256 does not match the model bytes")
        st = self.state()
        if manifest.version in st.versions:
            raise InvalidRequest(f"version {manifest.version} is already registered")
        signed = sign_manifest(manifest, self.key)
        manifest_bytes = json.dumps(asdict(signed), indent=1).encode()
        written, errors = [], []
        for store in self.stores:
            try:
                store.put(model_key(manifest.version), model_bytes)
                store.put(manifest_key(manifest.version), manifest_bytes)
                written.append(store)
            except StoreUnavailable as exc:
                errors.append(str(exc))
        if len(written) < self.min_replicas:
            for store in written:
                try:
                    store.delete(manifest_key(manifest.version))
                    store.delete(model_key(manifest.version))
                except StoreUnavailable:
                    pass
            raise StoreUnavailable(
                f"version {manifest.version} not registered: only {len(written)} of the "
                f"{self.min_replicas} required copies could be written ({'; '.join(errors)})")
        st.versions[manifest.version] = {
            "sha256": manifest.sha256, "family": manifest.family,
            "created_at": manifest.created_at, "registered_at": _now(),
            "metrics": dict(manifest.metrics)}
        self._write_state(st)
        logger.info("registered version=%s copies=%d", manifest.version, len(written))
        return signed

    def promote(self, ref: str, alias: str = "production",
                expected_features: Sequence[str] | None = None) -> Promotion:
        """Point ``alias`` at the version ``ref`` names, once it loads and verifies."""
        _check_alias(alias)
        st = self.state()
        version = self.resolve(ref, st)
        self.load(version, expected_features)  # refuse what could not be served
        previous = st.aliases.get(alias)
        if previous == version:
            return Promotion(alias, version, previous, st.generation, [])
        st.aliases[alias] = version
        st.history.setdefault(alias, []).append(version)
        missed = self._write_state(st)
        logger.info("promoted alias=%s version=%s previous=%s", alias, version, previous)
        return Promotion(alias, version, previous, st.generation, missed)

    def rollback(self, alias: str = "production",
                 expected_features: Sequence[str] | None = None) -> Promotion:
        """Point ``alias`` back at the version it had before its latest promotion."""
        _check_alias(alias)
        st = self.state()
        history = st.history.get(alias, [])
        if len(history) < 2:
            raise InvalidRequest(f"alias {alias!r} has no earlier version to roll back to "
                                 f"(history: {history or 'empty'})")
        current, target = history[-1], history[-2]
        self.load(target, expected_features)
        st.history[alias] = history[:-1]
        st.aliases[alias] = target
        missed = self._write_state(st)
        logger.info("rolled back alias=%s version=%s from=%s", alias, target, current)
        return Promotion(alias, target, current, st.generation, missed)

    # --- verification --------------------------------------------------------------------

    def verify(self, repair: bool = False) -> VerifyReport:
        """Check every replica of every version and the state in every store; repair if asked.

        Repair copies a verified replica over missing or divergent ones, and the newest
        state over stale ones. Stores that are down are reported, not repaired.
        """
        states = self.read_states()
        best = self.reconcile(states)
        report = VerifyReport(best.generation, {}, len(best.versions), [])
        up = []
        for s in states:
            if not s.up:
                report.stores[s.store.uri] = s.error
                report.problems.append(Problem(s.store.uri, None, s.error))
                continue
            report.stores[s.store.uri] = "up"
            up.append(s.store)
            if best.generation == 0 and s.state is None and not s.error.startswith("no "):
                report.problems.append(Problem(s.store.uri, None, s.error))
            elif best.generation > 0 and (s.state is None or s.state.payload() != best.payload()):
                got = "missing/invalid" if s.state is None else f"generation {s.state.generation}"
                problem = Problem(s.store.uri, None, f"registry state {got}, newest is "
                                  f"generation {best.generation}"
                                  + (f" ({s.error})" if s.error else ""))
                if repair and best.generation > 0:
                    problem.repaired = _try_put(s.store, STATE_KEY, best.to_bytes())
                report.problems.append(problem)
        for version, entry in sorted(best.versions.items()):
            good: tuple[bytes, bytes] | None = None
            broken: list[tuple[ArtifactStore, Problem]] = []
            for store in up:
                try:
                    data: list[bytes] = []
                    self._check_replica(store, version, entry, data)
                    if good is None:
                        good = (data[0], store.get(manifest_key(version)) or b"")
                except (ModelRefused, StoreUnavailable) as exc:
                    broken.append((store, Problem(store.uri, version, str(exc))))
            for store, problem in broken:
                if repair and good is not None:
                    problem.repaired = (_try_put(store, model_key(version), good[0]) and
                                        _try_put(store, manifest_key(version), good[1]))
                elif good is None:
                    problem.problem += " (no valid replica left anywhere: cannot repair)"
                report.problems.append(problem)
        return report


def _try_put(store: ArtifactStore, key: str, data: bytes) -> bool:
    try:
        store.put(key, data)
        return True
    except StoreUnavailable:
        return False


def _check_alias(alias: str) -> None:
    if alias not in ALIASES:
        raise InvalidRequest(f"unknown alias {alias!r}; choose from {', '.join(ALIASES)}")


def _deserialise(data: bytes, manifest: ModelManifest, source: str,
                 expected_features: Sequence[str] | None) -> LoadedModel:
    """Rebuild the estimator of verified bytes; ModelRefused with a reason otherwise."""
    import skops.io as sio

    if expected_features is not None and list(manifest.feature_names) != list(
            expected_features):
        raise ModelRefused(f"{source}: trained on features {manifest.feature_names}, this "
                           f"worker computes {list(expected_features)}", "features")
    try:
        unexpected = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    except Exception as exc:
        raise ModelRefused(f"{source}: not a readable skops model ({exc})",
                           "load_error") from exc
    if unexpected:
        raise ModelRefused(f"{source}: refuses to load unexpected types {unexpected}",
                           "untrusted")
    try:
        estimator = deserialise(data, source)
    except ArtifactError as exc:
        raise ModelRefused(str(exc), "load_error") from exc
    n_in = getattr(estimator, "n_features_in_", None)
    if n_in is not None and n_in != len(manifest.feature_names):
        raise ModelRefused(f"{source}: model expects {n_in} features, manifest lists "
                           f"{len(manifest.feature_names)}", "features")
    return LoadedModel(manifest, estimator)
