"""Model training, backtests, the registry and verified, replicated artifacts."""

from fraudstream.model_registry.artifact import (
    ArtifactError,
    LoadedModel,
    ModelManifest,
    load_verified,
    save_signed,
)

__all__ = ["ArtifactError", "LoadedModel", "ModelManifest", "load_verified", "save_signed"]
