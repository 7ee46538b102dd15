"""Training a fraud model on labelled transactions, with a time-ordered validation split."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features import FEATURE_NAMES, build_feature_matrix
from model_registry.artifact import ModelManifest, serialise
from model_registry.reference import build_reference
from simulator import Dataset

logger = logging.getLogger(__name__)


class TrainingError(ValueError):
    """The data cannot train a model (no rows, no fraud, unknown family...)."""


def _hgb() -> Any:
    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, max_leaf_nodes=31,
                                          l2_regularization=1.0, random_state=0)


def _logreg() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=1.0))


FAMILIES: dict[str, Callable[[], Any]] = {"hgb": _hgb, "logreg": _logreg}


@dataclass(frozen=True)
class TrainedModel:
    model_bytes: bytes
    manifest: ModelManifest


def choose_thresholds(y: np.ndarray, scores: np.ndarray, decline_precision: float = 0.8,
                      review_precision: float = 0.2) -> tuple[float, float]:
    """(review, decline): the lowest scores at which validation precision reaches each target."""
    precision, _recall, thresholds = precision_recall_curve(y, scores)

    def lowest(target: float, default: float) -> float:
        ok = np.nonzero(precision[:-1] >= target)[0]
        return float(thresholds[ok[0]]) if len(ok) else default

    decline = lowest(decline_precision, 0.9)
    review = min(lowest(review_precision, decline / 2), decline)
    return review, decline


def dataset_sha256(ds: Dataset) -> str:
    digest = hashlib.sha256()
    for column in (ds.timestamp_s, ds.amount, ds.is_fraud):
        digest.update(np.ascontiguousarray(column).tobytes())
    return digest.hexdigest()


def train(ds: Dataset, family: str = "hgb", delay_days: int = 7, validation_share: float = 0.2,
          progress: Callable[[str], None] | None = None) -> TrainedModel:
    """Fit ``family`` on the oldest rows, validate on the newest, choose decision thresholds.

    The most recent ``validation_share`` of rows is held out, never trained on: the shipped
    model is the validated one.
    """
    if family not in FAMILIES:
        raise TrainingError(f"unknown model family {family!r}; choose from {sorted(FAMILIES)}")
    if len(ds) < 100:
        raise TrainingError(f"only {len(ds)} labelled rows; need at least 100")
    say = progress or (lambda _msg: None)
    say(f"computing features for {len(ds):,} transactions")
    X = build_feature_matrix(ds.timestamp_s, ds.card_id, ds.merchant_id, ds.amount, ds.is_fraud,
                             delay_days)
    y = np.asarray(ds.is_fraud, dtype=np.int64)
    # Skip the first label-delay period: its merchant features are still empty.
    start_ts = int(ds.timestamp_s[0]) + delay_days * 86_400
    usable = np.asarray(ds.timestamp_s) >= start_ts
    if usable.sum() < 100:
        usable[:] = True
    X, y = X[usable], y[usable]
    split = int(len(y) * (1 - validation_share))
    if y[:split].sum() == 0 or y[split:].sum() == 0:
        raise TrainingError("the training or validation window holds no fraud; use more days")
    say(f"fitting {family} on {split:,} rows")
    estimator = FAMILIES[family]()
    estimator.fit(X[:split], y[:split])
    val_scores = estimator.predict_proba(X[split:])[:, 1]
    metrics = {"val_auc_roc": float(roc_auc_score(y[split:], val_scores)),
               "val_average_precision": float(average_precision_score(y[split:], val_scores)),
               "train_rows": float(split), "val_rows": float(len(y) - split)}
    review, decline = choose_thresholds(y[split:], val_scores)
    say(f"validation AUC {metrics['val_auc_roc']:.3f}, AP {metrics['val_average_precision']:.3f}")
    # The validated model is the one shipped: its thresholds were chosen on its own scores
    # (a refit on all rows would score differently and make the thresholds meaningless).
    model_bytes = serialise(estimator)
    sha = hashlib.sha256(model_bytes).hexdigest()
    now = datetime.now(UTC)
    manifest = ModelManifest(
        version=f"{family}-{now:%Y%m%d%H%M%S}-{sha[:8]}", family=family,
        feature_names=list(FEATURE_NAMES), sha256=sha,
        created_at=now.isoformat(timespec="seconds"), review_threshold=review,
        decline_threshold=decline, metrics=metrics, training_data_sha256=dataset_sha256(ds),
        reference={**build_reference(X[split:], FEATURE_NAMES, val_scores),
                   "feature_p99": np.percentile(X, 99, axis=0).tolist()},
    )
    return TrainedModel(model_bytes, manifest)
