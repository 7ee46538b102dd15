"""The model registry as commands and chaos scenarios use it: open, import, promote, announce."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from fraudstream.errors import UserError
from fraudstream.settings import SIGNING_KEY_FILE, Settings


def no_signing_key(settings: Settings, why: str) -> str:
    """What a command that needs FRAUDSTREAM_SIGNING_KEY says without it: ``why``, and where
    the demo's local key is when there is one (after `make demo`, the registry commands said
    only that the key was not set, and a new key cannot read the demo's registry)."""
    local = settings.state_dir / SIGNING_KEY_FILE
    hint = (f"; the demo's key is in {local}: export FRAUDSTREAM_SIGNING_KEY=$(cat {local})"
            if local.is_file() else "")
    return f"FRAUDSTREAM_SIGNING_KEY is not set; {why}{hint}"


def open_registry(settings: Settings) -> Any:
    """The registry of these settings (UserError without a signing key)."""
    from fraudstream.model_registry.registry import ModelRegistry

    if not settings.signing_key:
        raise UserError(no_signing_key(settings, "the registry signs and verifies models "
                                                 "with it"))
    return ModelRegistry.of(settings)


def announce(settings: Settings, alias: str, version: str, generation: int) -> None:
    """Publish the alias' new version on the model-updates topic."""
    from fraudstream.model_registry.updates import ModelUpdate, publish_update

    publish_update(settings, settings.topic_model_updates,
                   ModelUpdate(alias, version, generation))


def import_artifact(registry: Any, path: Path, settings: Settings) -> str:
    """Register the verified model file at ``path`` (a no-op if its version is known)."""
    from fraudstream.model_registry.artifact import ArtifactError, load_verified, read_manifest

    try:
        load_verified(path, settings.signing_key.encode())
        manifest = read_manifest(path)
        data = path.read_bytes()
    except ArtifactError as exc:
        raise UserError(str(exc)) from exc
    if manifest.version not in registry.state().versions:
        registry.register(data, manifest)
    return str(manifest.version)


def ensure_production(settings: Settings) -> str:
    """The registry's production version, importing and promoting the model file if none.

    With the registry unreachable the file's version is returned (workers then serve it).
    """
    from fraudstream.features import FEATURE_NAMES
    from fraudstream.model_registry.errors import ModelRefused, NotFound, RegistryError

    try:
        registry = open_registry(settings)
        try:
            current = str(registry.resolve("production"))
            # A production version this code cannot serve (other features) is replaced.
            registry.load(current, FEATURE_NAMES)
            return current
        except (NotFound, ModelRefused):
            version = import_artifact(registry, settings.model_path, settings)
            return str(registry.promote(version, "production", FEATURE_NAMES).version)
    except RegistryError as exc:
        print(f"model registry unavailable ({exc}); workers serve {settings.model_path}",
              file=sys.stderr)
    return file_version(settings)


def file_version(settings: Settings) -> str:
    """The version of the verified model file at FRAUDSTREAM_MODEL_PATH (what workers serve
    without a registry)."""
    from fraudstream.model_registry.artifact import load_verified

    return str(load_verified(settings.model_path, settings.signing_key.encode()).version)
