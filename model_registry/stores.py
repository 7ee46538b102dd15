"""Artifact stores: where model bytes, manifests and registry state are kept, chosen by URI.

A store is a small blob store (``get``/``put``/``delete`` by key). The registry writes every
version to several of them; none of them is trusted: what is read back is verified against
its SHA-256 and HMAC before use. Constructors do no I/O; the first operation connects.

- ``file:///abs/path`` (or ``file:relative/path``): one file per key under the folder, written
  atomically (temporary file, then rename).
- ``redis://[:password@]host:port/db[?prefix=name]``: one Redis string per key, under
  ``prefix`` (default ``fraudstream:registry``).
- ``kafka:`` or ``kafka:<topic>``: the newest record per key of a compacted topic on the
  settings' Kafka cluster (``model_registry.kafka_store``): every host that reaches Kafka
  reaches the models.
- ``memory://``: a dict in this process (tests).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fraudstream.model_registry.errors import InvalidRequest, StoreUnavailable
from fraudstream.redaction import redact_text, redact_url

if TYPE_CHECKING:
    from fraudstream.settings import Settings

DEFAULT_REDIS_PREFIX = "fraudstream:registry"
#: Short timeouts: a store that does not answer is skipped for another, not waited for.
REDIS_CONNECT_TIMEOUT_S = 1.0
REDIS_TIMEOUT_S = 3.0


class ArtifactStore(Protocol):
    """A blob store holding registry data; every method raises StoreUnavailable when down."""

    #: Where it is, without secrets (for messages).
    uri: str
    #: Its kind (``file``, ``redis``, ``memory``): a bounded metric label.
    scheme: str

    def get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when absent."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there, atomically."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...

    def ping(self) -> None:
        """Return if the store answers; raise StoreUnavailable otherwise."""
        ...


class FileStore:
    """Blobs as files under a folder."""

    scheme = "file"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"file://{root}"

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise InvalidRequest(f"bad store key {key!r}")
        return self.root / key

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"{self.uri}: cannot read {key} ({exc.strerror})") from exc

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreUnavailable(f"{self.uri}: cannot write {key} ({exc.strerror})") from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"{self.uri}: cannot delete {key} ({exc.strerror})") from exc

    def ping(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                raise StoreUnavailable(f"{self.uri}: folder is not writable")
        except OSError as exc:
            raise StoreUnavailable(f"{self.uri}: {exc.strerror}") from exc


class RedisStore:
    """Blobs as Redis strings under a key prefix."""

    scheme = "redis"

    def __init__(self, url: str, prefix: str = DEFAULT_REDIS_PREFIX) -> None:
        self.url = url
        self.prefix = prefix
        self.uri = redact(url) + (f"?prefix={prefix}" if prefix != DEFAULT_REDIS_PREFIX else "")
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self.url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
                socket_timeout=REDIS_TIMEOUT_S, retry_on_timeout=False)
        return self._client

    def _call(self, what: str, op: str, *args: Any) -> Any:
        import redis

        try:
            return getattr(self._redis(), op)(*args)
        except redis.RedisError as exc:
            # redis-py's messages can name the URL it was given: keep secrets out.
            raise StoreUnavailable(f"{self.uri}: {what} failed ({type(exc).__name__}: "
                                   f"{redact_text(str(exc))})") from exc

    def get(self, key: str) -> bytes | None:
        value = self._call(f"reading {key}", "get", f"{self.prefix}:{key}")
        return None if value is None else bytes(value)

    def put(self, key: str, data: bytes) -> None:
        self._call(f"writing {key}", "set", f"{self.prefix}:{key}", data)

    def delete(self, key: str) -> None:
        self._call(f"deleting {key}", "delete", f"{self.prefix}:{key}")

    def ping(self) -> None:
        self._call("ping", "ping")


class MemoryStore:
    """Blobs in a dict of this process (tests and experiments)."""

    scheme = "memory"

    def __init__(self, name: str = "") -> None:
        self.uri = f"memory://{name}"
        self.blobs: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.blobs.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.blobs[key] = bytes(data)

    def delete(self, key: str) -> None:
        self.blobs.pop(key, None)

    def ping(self) -> None:
        return None


def redact(uri: str) -> str:
    """``uri`` without a password, in its user info or its query string (safe to log)."""
    return redact_url(uri)


def open_store(uri: str, settings: Settings | None = None) -> ArtifactStore:
    """The store a URI names (see the module docstring); InvalidRequest for an unknown one.

    ``settings`` give a ``kafka:`` store its cluster and connection (required for one).
    """
    uri = uri.strip()
    parts = urlsplit(uri)
    if parts.scheme == "kafka":
        if settings is None:
            raise InvalidRequest(f"store URI {uri!r} needs the Kafka settings")
        from fraudstream.model_registry.kafka_store import KafkaStore

        topic = (parts.netloc + parts.path).strip("/") or settings.topic_model_store
        return KafkaStore(settings, topic)
    if parts.scheme == "file":
        path = parts.netloc + parts.path
        if not path:
            raise InvalidRequest(f"store URI {uri!r} names no folder (file:///abs/path)")
        return FileStore(Path(path))
    if parts.scheme in ("redis", "rediss", "unix"):
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = next((v for k, v in query if k == "prefix"), DEFAULT_REDIS_PREFIX)
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
        return RedisStore(url, prefix or DEFAULT_REDIS_PREFIX)
    if parts.scheme == "memory":
        return MemoryStore(parts.netloc + parts.path)
    raise InvalidRequest(f"unknown store URI {redact(uri)!r}: use file:///path, "
                         "redis://host:port/db or kafka:[topic]")


def open_stores(uris: str | list[str], settings: Settings | None = None
                ) -> list[ArtifactStore]:
    """Stores for a comma-separated list (or a list) of URIs (``settings``: see open_store)."""
    items = uris.split(",") if isinstance(uris, str) else uris
    stores = [open_store(u, settings) for u in items if u.strip()]
    if not stores:
        raise InvalidRequest("no model stores configured (FRAUDSTREAM_MODEL_STORES)")
    return stores


def store_labels(stores: list[ArtifactStore]) -> list[str]:
    """A bounded, secret-free label per store: its scheme, numbered when a scheme repeats."""
    labels, seen = [], dict[str, int]()
    for store in stores:
        seen[store.scheme] = seen.get(store.scheme, 0) + 1
        n = seen[store.scheme]
        labels.append(store.scheme if n == 1 else f"{store.scheme}-{n}")
    return labels
