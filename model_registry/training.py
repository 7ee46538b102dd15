"""Training a fraud model with prequential (time-ordered) validation and a small parameter search.

Validation follows the backtest protocol (``model_registry.backtest``): each fold trains on
``train_days`` days, skips the label delay and validates on the next ``val_days`` days, with cards
already known to be compromised removed; folds step back in time from the newest data, so no
fold ever trains on rows newer than the rows it is judged on. Each hyperparameter setting of the
family's grid (class weights included) is scored by its mean average precision over the folds;
the best one is kept. The shipped model is the one fitted on the newest fold, and its review and
decline thresholds come from its own validation scores.

Every fold also trains on the data's first ``delay_days`` days (``TrainingPlan.cold_start``):
their cards and merchants have little or no history yet (no merchant label is old enough to
count), which is what the workers see after a fresh start (every demo), and for every new card
or merchant. Without them no fold ever shows a model a cold row, and a blend (its forest)
sent 89 % of a fresh demo's first 18,000 transactions to review (0.8 % with them; 4-5 % of warm
traffic either way).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve

from fraudstream.features import FEATURE_NAMES, build_feature_matrix
from fraudstream.features.definitions import DAY_S
from fraudstream.model_registry.artifact import ModelManifest, serialise
from fraudstream.model_registry.backtest import Split, Windows, quality_metrics, split
from fraudstream.model_registry.families import (
    DEFAULT_FAMILY,
    Params,
    UnknownFamilyError,
    family,
)
from fraudstream.model_registry.reference import build_reference
from fraudstream.simulator import Dataset

logger = logging.getLogger(__name__)


class TrainingError(ValueError):
    """The data cannot train a model (no rows, no fraud, unknown family...)."""


@dataclass(frozen=True)
class TrainedModel:
    model_bytes: bytes
    manifest: ModelManifest
    #: What the search tried, and the newest fold's validation data (for the report).
    search: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, np.ndarray] = field(default_factory=dict)
    estimator: Any = None


@dataclass(frozen=True)
class TrainingPlan:
    """Fold sizes, the search switch and the precision targets of the decision thresholds."""

    train_days: int = 7
    val_days: int = 7
    folds: int = 3
    search: bool = True
    review_precision: float = 0.2
    decline_precision: float = 0.8
    #: Train every fold on the data's first label-delay days too (cold cards and merchants).
    cold_start: bool = True


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


def flagged_figures(y: np.ndarray, scores: np.ndarray, review: float) -> dict[str, float]:
    """Precision and recall of the flagged decisions (score >= the review threshold, as the
    workers decide), which the live-performance alerts hold the model to."""
    flagged = scores >= review
    fraud = np.asarray(y) == 1
    tp = int((flagged & fraud).sum())
    return {"val_flagged_precision": tp / int(flagged.sum()) if flagged.any() else 0.0,
            "val_flagged_recall": tp / int(fraud.sum()) if fraud.any() else 0.0}


def dataset_sha256(ds: Dataset) -> str:
    digest = hashlib.sha256()
    for column in (ds.timestamp_s, ds.amount, ds.is_fraud):
        digest.update(np.ascontiguousarray(column).tobytes())
    return digest.hexdigest()


def first_warm_day(ds: Dataset, delay_days: int) -> int:
    """The first day of the data with merchant labels old enough to count: the days before it
    are cold (``cold_start_rows``) and start no validation window (``fold_windows``)."""
    return int(ds.timestamp_s[0]) // DAY_S + delay_days


def cold_start_rows(ds: Dataset, delay_days: int) -> np.ndarray:
    """Rows of the data's first ``delay_days`` days, which ``fold_windows`` leaves out of every
    window: their cards have little history and their merchants no usable label yet."""
    days = np.asarray(ds.timestamp_s, dtype=np.int64) // DAY_S
    return np.flatnonzero(days < first_warm_day(ds, delay_days))


def fold_windows(ds: Dataset, plan: TrainingPlan, delay_days: int) -> list[Windows]:
    """Validation folds, newest first, each a backtest window; the first ``delay_days`` days of
    the data are left out (their merchant features are still empty)."""
    first_day = first_warm_day(ds, delay_days)
    end_day = int(ds.timestamp_s[-1]) // DAY_S + 1
    out = []
    for k in range(plan.folds):
        test_start = end_day - (k + 1) * plan.val_days
        w = Windows(test_start - delay_days - plan.train_days, plan.train_days, delay_days,
                    plan.val_days)
        if w.train_start_day < first_day:
            break
        out.append(w)
    return out


def _progress_bar(total: int, desc: str, unit: str = "fit") -> Any:
    from tqdm import tqdm

    # disable=None: drawn on a terminal, silent in logs and tests.
    return tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False)


def train(ds: Dataset, family_name: str = DEFAULT_FAMILY, delay_days: int = 7,
          plan: TrainingPlan | None = None,
          progress: Callable[[str], None] | None = None) -> TrainedModel:
    """Search ``family_name``'s grid with prequential validation and ship the newest fold's fit."""
    plan = plan or TrainingPlan()
    try:
        fam = family(family_name)
    except UnknownFamilyError as exc:
        raise TrainingError(str(exc)) from None
    if len(ds) < 100:
        raise TrainingError(f"only {len(ds)} labelled rows; need at least 100")
    if int(np.asarray(ds.is_fraud).sum()) == 0:
        raise TrainingError("the data holds no fraud; a fraud model needs labelled frauds")
    folds = fold_windows(ds, plan, delay_days)
    if not folds:
        need = delay_days * 2 + plan.train_days + plan.val_days
        raise TrainingError(f"the data spans too few days for one validation fold (need "
                            f"{need}: label delay, {plan.train_days} training, delay again, "
                            f"{plan.val_days} validation)")
    say = progress or (lambda _msg: None)
    say(f"computing features for {len(ds):,} transactions")
    with _progress_bar(len(ds), "features", unit="tx") as bar:
        X = build_feature_matrix(ds.timestamp_s, ds.card_id, ds.merchant_id, ds.amount,
                                 ds.is_fraud, delay_days, progress=lambda i: bar.update(i - bar.n))
        bar.update(len(ds) - bar.n)
    y = np.asarray(ds.is_fraud, dtype=np.int64)
    days = np.asarray(ds.timestamp_s, dtype=np.int64) // DAY_S
    parts = [p for p in (split(ds, w) for w in folds)
             if y[p.train].sum() > 0 and len(np.unique(y[p.evaluated])) == 2]
    cold = cold_start_rows(ds, delay_days) if plan.cold_start else np.zeros(0, dtype=np.int64)
    if len(cold):
        # Older than every training window (fold_windows starts them after these days); the
        # validation rows, and which cards count as known compromised, stay the window's own.
        parts = [replace(p, train=np.concatenate([cold, p.train])) for p in parts]
    if not parts:
        raise TrainingError("no validation fold holds fraud in both its training and its "
                            "validation window; use more days")
    grid = fam.grid if plan.search else (fam.default_params,)
    if len(grid) > 1 and len(parts) < 2:
        # Choosing on the one fold and reporting it would overstate the model: no search.
        say("one validation fold: the default setting is used (a search needs a second, "
            "older fold to choose on, so that the newest one can judge the choice)")
        grid = (fam.default_params,)
    held_out = parts[0]
    choosing = parts[1:] if len(grid) > 1 else parts
    say(f"{fam.name}: {len(grid)} setting(s) x {len(choosing)} time-ordered fold(s)"
        + (", then the chosen one on the newest fold" if len(grid) > 1 else ""))
    search: list[dict[str, Any]] = []
    best: tuple[float, Params] | None = None
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: on shared cores, threads spinning against each other cost more than
    # they give (measured for the workers, see workers/scoring.py).
    with _progress_bar(len(grid) * len(choosing) + (len(grid) > 1), f"training {fam.name}") \
            as bar, threadpool_limits(limits=1):
        held: tuple[dict[str, float], Any, np.ndarray] | None = None
        for params in grid:
            fold_metrics = []
            for p in choosing:
                fit = _fit_on_fold(fam.build(params), X, y, days, ds, p)
                fold_metrics.append(fit[0])
                if p is held_out:  # no search: the newest fold's fit is the one shipped
                    held = fit
                bar.update()
            mean = {k: float(np.mean([m[k] for m in fold_metrics])) for k in fold_metrics[0]}
            search.append({"params": dict(params), **mean, "folds": len(fold_metrics)})
            if best is None or mean["average_precision"] > best[0]:
                best = (mean["average_precision"], params)
        assert best is not None
        params = best[1]
        if held is None:
            # The newest fold judges the chosen setting: it took no part in choosing it.
            held = _fit_on_fold(fam.build(params), X, y, days, ds, held_out)
            bar.update()
        held_metrics, estimator, val_scores = held
    chosen = next(s for s in search if s["params"] == dict(params))
    p0 = held_out
    val_y = y[p0.evaluated]
    review, decline = choose_thresholds(val_y, val_scores, plan.decline_precision,
                                        plan.review_precision)
    metrics = {**{f"val_{k}": v for k, v in held_metrics.items()},
               **flagged_figures(val_y, val_scores, review),
               **{f"selection_{k}": chosen[k] for k in held_metrics},
               "selection_folds": float(len(choosing)), "search_settings": float(len(grid)),
               "val_folds": 1.0,
               "train_rows": float(len(p0.train)), "train_cold_rows": float(len(cold)),
               "val_rows": float(len(p0.evaluated))}
    say(f"chosen {dict(params)}: validation AUC {metrics['val_auc_roc']:.3f}, "
        f"AP {metrics['val_average_precision']:.3f}, "
        f"CP@100 {metrics['val_card_precision_at_100']:.3f} on the newest fold ("
        + (f"held out: the search chose on {len(choosing)} older fold(s), mean AP "
           f"{chosen['average_precision']:.3f}" if len(grid) > 1 else
           f"no search; mean of all {len(choosing)} fold(s): AP "
           f"{chosen['average_precision']:.3f}") + ")")
    model_bytes = serialise(estimator)
    sha = hashlib.sha256(model_bytes).hexdigest()
    now = datetime.now(UTC)
    manifest = ModelManifest(
        version=f"{fam.name}-{now:%Y%m%d%H%M%S}-{sha[:8]}", family=fam.name,
        feature_names=list(FEATURE_NAMES), sha256=sha,
        created_at=now.isoformat(timespec="seconds"), review_threshold=review,
        decline_threshold=decline, metrics=metrics, training_data_sha256=dataset_sha256(ds),
        # The drift reference describes what the workers will see: every row of the test
        # window, the cards the evaluation leaves out (known compromised) included.
        reference={**build_reference(X[p0.test_window], FEATURE_NAMES, np.asarray(
            estimator.predict_proba(X[p0.test_window])[:, 1])),
                   "feature_p99": np.percentile(X[p0.train], 99, axis=0).tolist()},
    )
    validation = {"X": X[p0.evaluated], "y": val_y, "scores": val_scores}
    return TrainedModel(model_bytes, manifest, search, validation, estimator)


def _fit_on_fold(estimator: Any, X: np.ndarray, y: np.ndarray, days: np.ndarray,
                 ds: Dataset, p: Split) -> tuple[dict[str, float], Any, np.ndarray]:
    """Fit on the fold's training rows; its validation metrics, the fit and its scores."""
    estimator.fit(X[p.train], y[p.train])
    ev = p.evaluated
    scores = np.asarray(estimator.predict_proba(X[ev])[:, 1])
    return (quality_metrics(y[ev], scores, days[ev], np.asarray(ds.card_id)[ev]), estimator,
            scores)


def write_report(trained: TrainedModel, out_dir: Path,
                 progress: Callable[[str], None] | None = None) -> Path:
    """The Markdown report with PNG plots for a trained model (see ``model_registry.report``)."""
    from fraudstream.model_registry.report import write_report as write

    return write(trained, out_dir, progress)
