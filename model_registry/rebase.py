"""Re-basing a model version's drift reference on recent traffic, once an operator accepts a shift.

A drift alert can be the world changing for good (a new merchant mix, a currency change) with
the model still performing. Retraining is one answer; the other is to accept the new normal:
the same model bytes are registered again as a new version whose manifest carries reference
histograms (and per-feature thresholds) built from recent traffic, then promoted like any
version. Nothing signed is edited in place: the old version, its reference and its history stay,
and a rollback brings the old reference back.

Recent traffic comes as a labelled CSV of the transaction contract (exported from the
``transactions`` topic and the labels known so far), in time order, covering the feature
lookback (``features.lookback_days``) before the rows the reference is built on: the features
are computed with the offline code path the workers share, so the reference describes what
warm workers compute.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fraudstream.model_registry.artifact import ModelManifest
from fraudstream.model_registry.errors import InvalidRequest
from fraudstream.model_registry.reference import build_reference
from fraudstream.model_registry.registry import ModelRegistry, model_key


def rebased_manifest(manifest: ModelManifest, X: np.ndarray, scores: np.ndarray, *,
                     source: str, now: datetime | None = None) -> ModelManifest:
    """A new, unsigned manifest for the same model with its reference rebuilt from ``X``.

    ``source`` says where the rows came from (kept in ``reference.rebased_from``).
    """
    now = now or datetime.now(UTC)
    old = manifest.reference or {}
    reference: dict[str, Any] = {
        **build_reference(X, manifest.feature_names, scores, bins=int(old.get("bins", 10))),
        "rebased_from": {"version": manifest.version, "rows": len(X), "source": source,
                         "at": now.isoformat(timespec="seconds")},
    }
    if "feature_p99" in old:
        reference["feature_p99"] = old["feature_p99"]  # the training data's range, unchanged
    body = {**asdict(manifest), "signature": "", "reference": reference,
            "version": f"{manifest.version.split('-rebased-')[0]}-rebased-{now:%Y%m%d%H%M%S}",
            "created_at": now.isoformat(timespec="seconds")}
    return ModelManifest(**body)


def rebase_reference(registry: ModelRegistry, ref: str, X: np.ndarray, *, source: str,
                     now: datetime | None = None) -> ModelManifest:
    """Register version ``ref``'s model again with a reference built from the rows ``X``.

    Returns the new (signed) manifest; promote its version to put the reference in use.
    """
    if len(X) == 0:
        raise InvalidRequest("no rows to build a reference from")
    loaded = registry.load(ref)
    manifest = loaded.model.manifest
    if X.shape[1] != len(manifest.feature_names):
        raise InvalidRequest(f"rows have {X.shape[1]} features, the model "
                             f"{len(manifest.feature_names)}")
    store = next(s for s in registry.stores if s.uri == loaded.store_uri)
    data = store.get(model_key(manifest.version))
    if data is None or hashlib.sha256(data).hexdigest() != manifest.sha256:
        raise InvalidRequest(f"the bytes of {manifest.version} changed on {store.uri}")
    scores = np.asarray(loaded.model.estimator.predict_proba(X)[:, 1])
    return registry.register(data, rebased_manifest(manifest, X, scores, source=source, now=now))
