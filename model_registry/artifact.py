"""Signed model artifacts: skops bytes plus a manifest holding their SHA-256 and an HMAC.

A model is deserialised only after its checksum and signature match, and skops refuses any
type outside a short allow-list, so a tampered or foreign file can never execute code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import skops.io as sio

from fraudstream.model_registry.documents import (
    MalformedDocument,
    checked_fields,
    dict_of,
    is_dict,
    is_number,
    is_str,
    list_of,
    load_json,
)

#: Types skops may rebuild beyond its defaults (all from scikit-learn's own estimators).
TRUSTED_TYPES = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
]


class ArtifactError(Exception):
    """A model artifact is missing, corrupt, unsigned or tampered with; it was not loaded."""

    retriable = False


@dataclass(frozen=True)
class ModelManifest:
    """What the registry knows of a model version (stored next to its bytes)."""

    version: str
    family: str
    feature_names: list[str]
    sha256: str
    created_at: str
    review_threshold: float
    decline_threshold: float
    metrics: dict[str, float] = field(default_factory=dict)
    training_data_sha256: str = ""
    reference: dict[str, Any] = field(default_factory=dict)
    signature: str = ""

    def payload(self) -> bytes:
        """Canonical bytes the signature covers (everything but the signature)."""
        body = asdict(self)
        body.pop("signature")
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class LoadedModel:
    """A verified, deserialised model ready to score."""

    manifest: ModelManifest
    estimator: Any

    @property
    def version(self) -> str:
        return self.manifest.version


def _sign(key: bytes, manifest: ModelManifest) -> str:
    return hmac.new(key, manifest.payload(), hashlib.sha256).hexdigest()


def manifest_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def serialise(estimator: Any) -> bytes:
    """skops bytes of an estimator."""
    return sio.dumps(estimator)


def sign_manifest(manifest: ModelManifest, key: bytes) -> ModelManifest:
    """The manifest with its HMAC-SHA256 signature filled in."""
    unsigned = ModelManifest(**{**asdict(manifest), "signature": ""})
    return ModelManifest(**{**asdict(unsigned), "signature": _sign(key, unsigned)})


def save_signed(path: Path, model_bytes: bytes, manifest: ModelManifest, key: bytes) -> Path:
    """Write ``path`` (skops bytes) and its signed manifest, each atomically."""
    if not key:
        raise ArtifactError("no signing key: set FRAUDSTREAM_SIGNING_KEY to sign models")
    if hashlib.sha256(model_bytes).hexdigest() != manifest.sha256:
        raise ArtifactError("manifest sha256 does not match the model bytes")
    if manifest_path(path) == path:
        raise ArtifactError(f"{path}: its manifest would be written over it; a model file "
                            "needs another suffix than .json (e.g. .skops)")
    signed = sign_manifest(manifest, key)
    _atomic_write(path, model_bytes)
    _atomic_write(manifest_path(path), json.dumps(asdict(signed), indent=2).encode())
    return path


def verify(model_bytes: bytes, manifest: ModelManifest, key: bytes, source: str) -> None:
    """Raise ArtifactError unless the bytes match the manifest and the manifest its signature."""
    if not key:
        raise ArtifactError("no signing key: set FRAUDSTREAM_SIGNING_KEY to verify models")
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != manifest.sha256:
        raise ArtifactError(f"{source}: checksum mismatch (sha256 {digest[:12]}…, manifest "
                            f"{manifest.sha256[:12]}…): the model file is corrupt or replaced")
    if not hmac.compare_digest(_sign(key, manifest), manifest.signature):
        raise ArtifactError(f"{source}: bad signature: the manifest was altered or signed with "
                            "another key (check FRAUDSTREAM_SIGNING_KEY)")


def deserialise(model_bytes: bytes, source: str) -> Any:
    """Rebuild an estimator from verified skops bytes, refusing unexpected types."""
    try:
        untrusted = sio.get_untrusted_types(data=model_bytes)
        unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
        if unexpected:
            raise ArtifactError(f"{source}: refuses to load unexpected types {unexpected}")
        return sio.loads(model_bytes, trusted=untrusted)
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{source}: not a readable skops model ({exc})") from exc


def manifest_from_json(raw: bytes) -> ModelManifest:
    """The manifest ``raw`` holds; MalformedDocument unless every field has its type."""
    body = checked_fields(load_json(raw), {
        "version": is_str, "family": is_str, "feature_names": list_of(is_str),
        "sha256": is_str, "created_at": is_str, "review_threshold": is_number,
        "decline_threshold": is_number}, {
        "metrics": dict_of(is_number), "training_data_sha256": is_str,
        "reference": is_dict, "signature": is_str})
    return ModelManifest(**body)


def read_manifest(path: Path) -> ModelManifest:
    """The manifest next to a model file."""
    mpath = manifest_path(path)
    try:
        return manifest_from_json(mpath.read_bytes())
    except FileNotFoundError as exc:
        raise ArtifactError(f"{mpath}: no manifest; train a model first (`fraudstream train`)"
                            ) from exc
    except OSError as exc:
        raise ArtifactError(f"{mpath}: cannot read the manifest ({exc.strerror})") from exc
    except MalformedDocument as exc:
        raise ArtifactError(f"{mpath}: unreadable manifest ({exc})") from exc


def load_verified(path: Path, key: bytes) -> LoadedModel:
    """Load a model file only if checksum and signature match its manifest."""
    manifest = read_manifest(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read the model ({exc.strerror})") from exc
    verify(data, manifest, key, str(path))
    estimator = deserialise(data, str(path))
    n_in = getattr(estimator, "n_features_in_", None)
    if n_in is not None and n_in != len(manifest.feature_names):
        raise ArtifactError(f"{path}: model expects {n_in} features, "
                            f"manifest lists {len(manifest.feature_names)}")
    return LoadedModel(manifest, estimator)
