"""Live feature and score histograms over a sliding window, compared with the model's reference.

The worker hands every scored batch (its feature matrix, scores and the transactions' event
times) to ``DriftMonitor.observe``. The batch is binned once against the reference edges of the
model that scored it (one ``searchsorted`` and one ``bincount`` per feature) and kept as a
small count matrix; the window is the last ``window_rows`` rows, dropped a whole batch at a
time. PSI and Jensen-Shannon gauges are recomputed from the window's totals at most every
``publish_interval_s`` seconds, so the per-batch cost stays a few tens of microseconds whatever
the window size.

Like is compared with like (``monitoring.drift_scope``): calendar features are left out, and a
history feature's rows are counted only once the state is warm for it
(``monitoring.drift_warmup``), so its window never mixes cold-state rows into the comparison.
A histogram is compared only over a full window of rows counted for it (``window_rows``; the
monitor's ``min_rows`` only delays the first publication of the gauges). Each histogram has
its own threshold: the one the model's reference carries (``drift_thresholds``, from the
training data's own variability), else ``PSI_MAJOR``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudstream.monitoring.drift import METHODS, PSI_MAJOR
from fraudstream.monitoring.drift_scope import EXCLUDED_FEATURES, measured_features
from fraudstream.monitoring.drift_warmup import HistoryClock
from fraudstream.monitoring.metrics import WorkerMetrics

if TYPE_CHECKING:
    from fraudstream.settings import Settings

logger = logging.getLogger(__name__)

SCORE = "score"


def drift_thresholds(reference: Mapping[str, Any], names: Sequence[str]) -> dict[str, float]:
    """PSI threshold per histogram (features in ``names`` and the score).

    From the reference's ``drift_thresholds`` where it has one; manifests written before
    thresholds existed (or a feature missing from them) get ``PSI_MAJOR``.
    """
    stored = reference.get("drift_thresholds") or {}
    return {name: float(stored.get(name, PSI_MAJOR)) for name in [*names, SCORE]}


class DriftWindow:
    """Binned counts of the last ``window_rows`` rows, per feature and for the score.

    ``names`` are the features measured; ``columns`` their positions in the feature matrix
    (default: the first ``len(names)`` columns, in order).
    """

    def __init__(self, reference: Mapping[str, Any], names: Sequence[str],
                 columns: Sequence[int] | None = None, *, window_rows: int) -> None:
        features = reference["features"]
        self.names = list(names)
        self.columns = np.asarray(range(len(self.names)) if columns is None else columns,
                                  dtype=np.intp)
        self.edges = [np.asarray(features[n]["edges"], dtype=np.float64) for n in self.names]
        self.edges.append(np.asarray(reference[SCORE]["edges"], dtype=np.float64))
        self.reference = [np.asarray(features[n]["proportions"], dtype=np.float64)
                          for n in self.names]
        self.reference.append(np.asarray(reference[SCORE]["proportions"], dtype=np.float64))
        self.width = max(len(e) + 1 for e in self.edges)
        self.window_rows = window_rows
        self._batches: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self.totals = np.zeros((len(self.edges), self.width))
        self.rows = 0

    def add(self, rows: np.ndarray, scores: np.ndarray,
            counted: np.ndarray | None = None) -> np.ndarray:
        """Add one batch; returns how many values of each measured feature were missing.

        ``counted``: one flag per histogram (measured features, then the score); a histogram
        not counted gets nothing from this batch (its state is not warm yet).
        """
        n = len(scores)
        data = np.column_stack([rows[:, self.columns], scores]).T  # one row per histogram
        finite = np.isfinite(data)
        missing = (~finite[: len(self.names)]).sum(axis=1)
        # One searchsorted per histogram, then one bincount over all of them, offset.
        idx = np.concatenate([np.searchsorted(e, col[ok], side="left") + i * self.width
                              for i, (e, col, ok) in enumerate(zip(self.edges, data, finite,
                                                                   strict=True))])
        counts = np.bincount(idx, minlength=self.totals.size).astype(np.float64).reshape(
            self.totals.shape)
        if counted is not None:
            counts[~np.asarray(counted, dtype=bool)] = 0.0
        self._batches.append((n, counts))
        self.totals += counts
        self.rows += n
        while self._batches and self.rows - self._batches[0][0] >= self.window_rows:
            old_n, old = self._batches.popleft()
            self.totals -= old
            self.rows -= old_n
        return missing

    def counted_rows(self) -> np.ndarray:
        """Rows in the window counted for each histogram (measured features, then the score)."""
        return self.totals.sum(axis=1)

    def statistics(self, min_rows: int = 1) -> dict[str, dict[str, float]]:
        """{feature or "score": {method: value}} for every histogram with ``min_rows`` rows."""
        out: dict[str, dict[str, float]] = {}
        for i, name in enumerate([*self.names, SCORE]):
            live = self.totals[i, : len(self.edges[i]) + 1]
            if live.sum() < max(min_rows, 1):
                continue
            out[name] = {m: fn(self.reference[i], live) for m, fn in METHODS.items()}
        return out


class DriftMonitor:
    """Keeps a ``DriftWindow`` for the model in use and publishes its statistics as gauges."""

    @classmethod
    def from_settings(cls, metrics: WorkerMetrics, settings: Settings) -> DriftMonitor:
        """The monitor a worker runs: every feature, windows and interval from ``settings``."""
        from fraudstream.features import FEATURE_NAMES

        return cls(metrics, FEATURE_NAMES, window_rows=settings.drift_window_rows,
                   min_rows=max(settings.drift_window_rows // 5, 1),
                   publish_interval_s=settings.monitoring_interval_s)

    def __init__(self, metrics: WorkerMetrics, feature_names: Sequence[str], *,
                 window_rows: int, min_rows: int, publish_interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.feature_names = list(feature_names)
        self.measured = measured_features(self.feature_names)
        self.columns = [self.feature_names.index(n) for n in self.measured]
        self.window_rows = window_rows
        self.min_rows = min(min_rows, window_rows)
        self.interval = publish_interval_s
        self.clock = clock
        self.window: DriftWindow | None = None
        self.version: str | None = None
        #: The state's history outlives a model swap: it is kept across versions.
        self.history = HistoryClock(self.feature_names)
        self.thresholds: dict[str, float] = {}
        self._published_at = float("-inf")
        self._seen_event_times = False

    def observe(self, version: str, reference: Mapping[str, Any], rows: np.ndarray,
                scores: np.ndarray, event_times: np.ndarray | None = None) -> None:
        """Account one scored batch of model ``version`` (whose manifest has ``reference``).

        ``event_times``: each row's transaction time (unix seconds); without them only a
        restored state's estimated history can warm the history features up.

        Never raises: monitoring must not fail a batch. A reference it cannot use (malformed
        histograms) switches drift measurement off for that model version, with one log line.
        """
        try:
            self._observe(version, reference, rows, scores, event_times)
        except Exception:
            logger.exception("drift measurement failed, off for this model version=%s", version)
            self.window = None

    def _observe(self, version: str, reference: Mapping[str, Any], rows: np.ndarray,
                 scores: np.ndarray, event_times: np.ndarray | None) -> None:
        if version != self.version:
            self._switch(version, reference)
        self.history.observe(rows, event_times)
        self._seen_event_times |= event_times is not None
        if self.window is None:
            return
        # Non-finite values are left out of the histograms; the scoring step counts them
        # (``fraudstream_missing_values_total``) before the model sees them.
        self.window.add(rows, scores, self.warm_flags())
        now = self.clock()
        if now - self._published_at >= self.interval and self.window.rows >= self.min_rows:
            self._published_at = now
            self.publish()

    def warm_flags(self) -> np.ndarray:
        """One flag per histogram (measured features, then the score): warm for it now."""
        flags = [self.history.warm(n) for n in self.measured]
        # The score depends on every feature, the calendar ones included.
        flags.append(all(self.history.warm(n) for n in self.feature_names))
        return np.asarray(flags, dtype=bool)

    def publish(self) -> None:
        """Set the drift, warm-up and history gauges from the window as it is now."""
        if self.window is None:
            return
        # A histogram is compared only over a full window of rows counted for it: its
        # threshold was measured on slices of that size, and a part-filled window (a feature
        # just warm) is noisier than the slices were.
        stats = self.window.statistics(self.window_rows)
        for name in self.measured:
            for method in METHODS:
                if name in stats:
                    self.metrics.feature_drift.labels(name, method).set(stats[name][method])
                else:
                    _remove(self.metrics.feature_drift, name, method)
        for method in METHODS:
            if SCORE in stats:
                self.metrics.score_drift.labels(method).set(stats[SCORE][method])
            else:
                _remove(self.metrics.score_drift, method)
        reason = "history" if self._seen_event_times else "no_event_times"
        other = "no_event_times" if reason == "history" else "history"
        for name in [*self.measured, SCORE]:
            lacking = (max(self.history.missing_s(n) for n in self.feature_names)
                       if name == SCORE else self.history.missing_s(name))
            _remove(self.metrics.feature_drift_warming, name, other)
            if lacking > 0:
                self.metrics.feature_drift_warming.labels(name, reason).set(lacking)
            else:
                _remove(self.metrics.feature_drift_warming, name, reason)
        for family in ("card", "merchant"):
            self.metrics.drift_history_seconds.labels(family).set(
                self.history.history_s(family))
        self.metrics.drift_window_rows.set(self.window.rows)

    def _switch(self, version: str, reference: Mapping[str, Any]) -> None:
        self.version = version
        self._published_at = float("-inf")
        # Statistics of the previous model's window say nothing about the new one.
        self.metrics.feature_drift.clear()
        self.metrics.score_drift.clear()
        self.metrics.feature_drift_threshold.clear()
        self.metrics.drift_window_rows.set(0)
        for name, why in EXCLUDED_FEATURES.items():
            if name in self.feature_names:
                self.metrics.feature_drift_excluded.labels(name, why).set(1)
        try:
            self.window = DriftWindow(reference, self.measured, self.columns,
                                      window_rows=self.window_rows)
            self.thresholds = drift_thresholds(reference, self.measured)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            logger.warning("model has no usable reference histograms, drift not measured "
                           "version=%s error=%r", version, exc)
            self.window = None
            return
        for name, threshold in self.thresholds.items():
            if name == SCORE:
                self.metrics.score_drift_threshold.set(threshold)
            else:
                self.metrics.feature_drift_threshold.labels(name).set(threshold)


def _remove(gauge: Any, *labels: str) -> None:
    """Drop one labelled series if it exists (a stale value would keep an alert alive)."""
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)
