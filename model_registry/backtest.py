"""The Fraud Detection Handbook's backtest protocol (Le Borgne et al., chapters 3 and 4).

Train on ``train_days`` days from ``train_start``, wait ``delay_days`` (labels are not yet known),
test on the next ``test_days`` days. Cards already known to be compromised are removed from each
test day: those with a fraud in the training window, and those with a fraud on any day up to
``delay_days + 1`` days before the test day (their labels would have arrived by then). Metrics:
AUC ROC and average precision over the test transactions, and card precision@k: each day, the
k cards with the highest score among cards not yet detected on an earlier test day, and the share
of them that are compromised, averaged over the test days.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudstream.features import build_feature_matrix
from fraudstream.features.definitions import DAY_S, lookback_days
from fraudstream.model_registry.families import Params, UnknownFamilyError, family
from fraudstream.simulator import Dataset


class BacktestError(ValueError):
    """The data or the windows cannot support a backtest (the message says why)."""


@dataclass(frozen=True)
class Windows:
    """Train, delay and test windows in whole UTC days (day = unix seconds // 86400)."""

    train_start_day: int
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    @classmethod
    def starting(cls, train_start: str, train_days: int = 7, delay_days: int = 7,
                 test_days: int = 7) -> Windows:
        """Windows from an ISO date (``YYYY-MM-DD``)."""
        try:
            day = date.fromisoformat(train_start)
        except ValueError:
            raise BacktestError(
                f"--train-start {train_start!r} is not a date (YYYY-MM-DD)") from None
        for name, value in (("train", train_days), ("test", test_days)):
            if value < 1:
                raise BacktestError(f"--{name}-days must be at least 1, not {value}")
        if delay_days < 0:
            raise BacktestError(f"--delay-days must be 0 or more, not {delay_days}")
        return cls((day - date(1970, 1, 1)).days, train_days, delay_days, test_days)

    @property
    def test_start_day(self) -> int:
        return self.train_start_day + self.train_days + self.delay_days

    @property
    def end_day(self) -> int:
        """First day after the test window."""
        return self.test_start_day + self.test_days


@dataclass(frozen=True)
class Split:
    """Row indices of the training set, of the test window, and of the evaluated test rows."""

    train: np.ndarray
    test_window: np.ndarray
    evaluated: np.ndarray


def split(ds: Dataset, windows: Windows) -> Split:
    """Training rows, test-window rows, and the test rows of cards not known to be compromised."""
    days = np.asarray(ds.timestamp_s, dtype=np.int64) // DAY_S
    fraud = np.asarray(ds.is_fraud) == 1
    cards = np.asarray(ds.card_id)
    w = windows
    train = np.flatnonzero((days >= w.train_start_day) & (days < w.train_start_day + w.train_days))
    test_window = np.flatnonzero((days >= w.test_start_day) & (days < w.end_day))
    known = set(cards[train[fraud[train]]].tolist())
    evaluated: list[np.ndarray] = []
    for d in range(w.test_start_day, w.end_day):
        # Frauds up to delay + 1 days before the test day are known by then (Handbook, ch. 3).
        newly = (days >= w.train_start_day + w.train_days) & (days <= d - w.delay_days - 1) & fraud
        known |= set(cards[newly].tolist())
        today = np.flatnonzero(days == d)
        keep = ~np.isin(cards[today], list(known)) if known else np.ones(len(today), bool)
        evaluated.append(today[keep])
    return Split(train, test_window, np.concatenate(evaluated) if evaluated else
                 np.zeros(0, dtype=np.int64))


def card_precision_at_k(days: np.ndarray, cards: np.ndarray, is_fraud: np.ndarray,
                        scores: np.ndarray, k: int = 100) -> float:
    """Daily share of compromised cards among the ``k`` highest-scored cards, averaged over days.

    A card's score on a day is the maximum of its transactions' scores, and it counts as
    compromised when any of them is a fraud. Cards found compromised in an earlier day's top
    ``k`` are left out of later days (they are blocked by then). Ties rank by card id.
    """
    days, cards = np.asarray(days), np.asarray(cards)
    is_fraud, scores = np.asarray(is_fraud), np.asarray(scores, dtype=np.float64)
    detected: set[Any] = set()
    per_day: list[float] = []
    for d in np.unique(days):
        on_day = days == d
        best: dict[Any, tuple[float, int]] = {}
        for card, score, y in zip(cards[on_day].tolist(), scores[on_day].tolist(),
                                  is_fraud[on_day].tolist(), strict=True):
            if card in detected:
                continue
            s, f = best.get(card, (-np.inf, 0))
            best[card] = (max(s, score), max(f, int(y)))
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], str(item[0])))[:k]
        hits = [card for card, (_s, f) in ranked if f]
        per_day.append(len(hits) / k)
        detected.update(hits)
    return float(np.mean(per_day)) if per_day else 0.0


@dataclass
class BacktestResult:
    """Metrics of one backtest, the test-window predictions, and where the time went."""

    family: str
    params: dict[str, Any]
    metrics: dict[str, float]
    transaction_ids: np.ndarray
    scores: np.ndarray
    timings_s: dict[str, float] = field(default_factory=dict)
    windows: Windows | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-able metrics, counts and timings."""
        where = {} if self.windows is None else {
            "train_start": _iso(self.windows.train_start_day),
            "test_start": _iso(self.windows.test_start_day)}
        return {"model": self.family, "params": self.params, **where, **self.metrics,
                "timings_s": {k: round(v, 2) for k, v in self.timings_s.items()}}


def backtest_rows(ds: Dataset, windows: Windows, label_delay_days: int) -> Dataset:
    """The rows from the feature look-back before training to the end of the test window.

    Their features equal those a computation over the whole file gives them: the rows left
    out are too old to change any feature (``features.definitions.lookback_days``).
    """
    return _rows_for(ds, windows.train_start_day, windows.end_day, label_delay_days)


def _rows_for(ds: Dataset, first_day: int, end_day: int, label_delay_days: int) -> Dataset:
    """The rows whose features days ``first_day`` to ``end_day`` (excluded) need."""
    ts = np.asarray(ds.timestamp_s, dtype=np.int64)
    lo = (first_day - lookback_days(label_delay_days)) * DAY_S
    first, last = np.searchsorted(ts, [lo, end_day * DAY_S])
    return ds.take(slice(int(first), int(last)))


def check_windows(ds: Dataset, windows: Windows, parts: Split) -> None:
    """Refuse windows the data cannot fill, with a message naming the problem."""
    if len(ds) == 0:
        raise BacktestError("the data holds no transactions")
    first_day = int(ds.timestamp_s[0]) // DAY_S
    last_day = int(ds.timestamp_s[-1]) // DAY_S
    span = f"the data covers {_iso(first_day)} to {_iso(last_day)}"
    if windows.train_start_day < first_day:
        raise BacktestError(f"training starts {_iso(windows.train_start_day)}, before the data; "
                            f"{span}")
    if windows.end_day - 1 > last_day:
        raise BacktestError(f"the test window ends {_iso(windows.end_day - 1)}, after the data; "
                            f"{span}")
    y = np.asarray(ds.is_fraud)
    if len(parts.train) == 0:
        raise BacktestError(f"the training window holds no transactions; {span}")
    if y[parts.train].sum() == 0:
        raise BacktestError("the training window holds no fraud; choose a later "
                            "--train-start or more --train-days")
    if len(parts.evaluated) == 0:
        raise BacktestError("the test window holds no transactions of cards not already known "
                            "to be compromised")
    if len(np.unique(y[parts.evaluated])) < 2:
        raise BacktestError("the test window holds only one class (no fraud or no genuine "
                            "transaction); AUC and precision are undefined there")


def run_backtest(ds: Dataset, windows: Windows, model: str = "hgb",
                 params: Params | None = None, label_delay_days: int | None = None, k: int = 100,
                 progress: Callable[[str], None] | None = None,
                 jobs: int | None = None) -> BacktestResult:
    """Fit ``model`` on the training window and measure it on the test window.

    ``label_delay_days`` (default: the protocol's delay) shifts the merchant-risk features.
    """
    return run_backtests(ds, [windows], [model], params, label_delay_days, k, progress,
                         jobs)[0]


def run_backtests(ds: Dataset, windows: Sequence[Windows], models: Sequence[str],
                  params: Params | None = None, label_delay_days: int | None = None,
                  k: int = 100, progress: Callable[[str], None] | None = None,
                  jobs: int | None = None) -> list[BacktestResult]:
    """Every model on every split (in that order), with the features computed once.

    All windows must share one label delay (it shapes the features). The features of the rows
    from the look-back before the earliest training window to the end of the latest test window
    equal those of the whole file (``backtest_rows``), so each split sees what it would alone.
    """
    say = progress or (lambda _msg: None)
    try:
        families = [family(m) for m in models]
    except UnknownFamilyError as exc:
        raise BacktestError(str(exc)) from None
    if not windows or not families:
        raise BacktestError("a backtest needs at least one split and one model")
    if len({w.delay_days for w in windows}) > 1:
        raise BacktestError("every split of one backtest needs the same --delay-days")
    delay = windows[0].delay_days if label_delay_days is None else label_delay_days
    part = _rows_for(ds, min(w.train_start_day for w in windows),
                     max(w.end_day for w in windows), delay)
    splits = [split(part, w) for w in windows]
    for w, parts in zip(windows, splits, strict=True):
        check_windows(ds, w, parts)
    say(f"computing features for {len(part):,} transactions")
    started = time.perf_counter()
    X = build_feature_matrix(part.timestamp_s, part.card_id, part.merchant_id, part.amount,
                             part.is_fraud, delay, jobs=jobs)
    feature_s = time.perf_counter() - started
    y = np.asarray(part.is_fraud, dtype=np.int64)
    results = []
    for fam in families:
        for w, parts in zip(windows, splits, strict=True):
            chosen = dict(fam.default_params if params is None else params)
            say(f"{fam.name}, training from {_iso(w.train_start_day)}: "
                f"{len(parts.train):,} rows ({int(y[parts.train].sum()):,} frauds), testing on "
                f"{len(parts.evaluated):,}")
            result = _fit_and_measure(fam.build(chosen), X, y, part, parts, k)
            result.family, result.params = fam.name, chosen
            result.windows = w
            result.timings_s = {"features": feature_s, **result.timings_s}
            results.append(result)
    return results


def _fit_and_measure(estimator: Any, X: np.ndarray, y: np.ndarray, part: Dataset, parts: Split,
                     k: int) -> BacktestResult:
    started = time.perf_counter()
    estimator.fit(X[parts.train], y[parts.train])
    timings = {"fit": time.perf_counter() - started}
    started = time.perf_counter()
    window_scores = np.asarray(estimator.predict_proba(X[parts.test_window])[:, 1])
    timings["predict"] = time.perf_counter() - started
    position = np.searchsorted(parts.test_window, parts.evaluated)
    scores = window_scores[position]
    ev = parts.evaluated
    days = np.asarray(part.timestamp_s, dtype=np.int64)[ev] // DAY_S
    metrics = {
        **quality_metrics(y[ev], scores, days, np.asarray(part.card_id)[ev], k),
        "train_rows": float(len(parts.train)), "train_frauds": float(y[parts.train].sum()),
        "test_rows": float(len(ev)), "test_frauds": float(y[ev].sum()),
        "test_window_rows": float(len(parts.test_window)),
    }
    return BacktestResult("", {}, metrics, np.asarray(part.transaction_id)[parts.test_window],
                          window_scores, timings)


def quality_metrics(y: np.ndarray, scores: np.ndarray, days: np.ndarray, cards: np.ndarray,
                    k: int = 100) -> dict[str, float]:
    """AUC ROC, average precision and card precision@k of scores on evaluated rows."""
    return {"auc_roc": float(roc_auc_score(y, scores)),
            "average_precision": float(average_precision_score(y, scores)),
            f"card_precision_at_{k}": card_precision_at_k(days, cards, y, scores, k)}


#: The metrics a mean over splits reports.
QUALITY_METRICS = ("auc_roc", "average_precision", "card_precision_at_100")


def mean_over_splits(results: Sequence[BacktestResult]) -> dict[str, float]:
    """The unweighted mean of each quality metric over the splits of one model."""
    return {m: float(np.mean([r.metrics[m] for r in results])) for m in QUALITY_METRICS
            if all(m in r.metrics for r in results)}


def _iso(day: int) -> str:
    return date.fromordinal(date(1970, 1, 1).toordinal() + day).isoformat()
