"""Live feature and score histograms over a sliding window, compared with the model's reference.

The worker hands every scored batch (its feature matrix and scores) to ``DriftMonitor.observe``.
The batch is binned once against the reference edges of the model that scored it (one
``searchsorted`` and one ``bincount`` per feature) and kept as a small count matrix; the window
is the last ``window_rows`` rows, dropped a whole batch at a time. PSI and Jensen-Shannon
gauges are recomputed from the window's totals at most every ``publish_interval_s`` seconds, so
the per-batch cost stays a few tens of microseconds whatever the window size.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from monitoring.drift import METHODS
from monitoring.metrics import WorkerMetrics

logger = logging.getLogger(__name__)

SCORE = "score"


class DriftWindow:
    """Binned counts of the last ``window_rows`` rows, per feature and for the score."""

    def __init__(self, reference: Mapping[str, Any], feature_names: Sequence[str],
                 window_rows: int) -> None:
        features = reference["features"]
        self.names = list(feature_names)
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

    def add(self, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Add one batch; returns how many values of each feature were missing (not finite)."""
        n = len(scores)
        data = np.column_stack([rows, scores]).T  # one row per histogram
        finite = np.isfinite(data)
        missing = np.zeros(len(self.names), dtype=np.int64)
        if finite.all():
            # One searchsorted per histogram, then one bincount over all of them, offset.
            idx = np.concatenate([np.searchsorted(e, col, side="left") + i * self.width
                                  for i, (e, col) in enumerate(zip(self.edges, data,
                                                                   strict=True))])
        else:
            missing = (~finite[: len(self.names)]).sum(axis=1)
            idx = np.concatenate([np.searchsorted(e, col[ok], side="left") + i * self.width
                                  for i, (e, col, ok) in enumerate(zip(self.edges, data, finite,
                                                                       strict=True))])
        counts = np.bincount(idx, minlength=self.totals.size).astype(np.float64).reshape(
            self.totals.shape)
        self._batches.append((n, counts))
        self.totals += counts
        self.rows += n
        while self._batches and self.rows - self._batches[0][0] >= self.window_rows:
            old_n, old = self._batches.popleft()
            self.totals -= old
            self.rows -= old_n
        return missing

    def statistics(self) -> dict[str, dict[str, float]]:
        """{feature or "score": {method: value}} for every histogram with data in the window."""
        out: dict[str, dict[str, float]] = {}
        for i, name in enumerate([*self.names, SCORE]):
            live = self.totals[i, : len(self.edges[i]) + 1]
            if live.sum() <= 0:
                continue
            out[name] = {m: fn(self.reference[i], live) for m, fn in METHODS.items()}
        return out


class DriftMonitor:
    """Keeps a ``DriftWindow`` for the model in use and publishes its statistics as gauges."""

    def __init__(self, metrics: WorkerMetrics, feature_names: Sequence[str], *,
                 window_rows: int, min_rows: int, publish_interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.feature_names = list(feature_names)
        self.window_rows = window_rows
        self.min_rows = min(min_rows, window_rows)
        self.interval = publish_interval_s
        self.clock = clock
        self.window: DriftWindow | None = None
        self.version: str | None = None
        self._published_at = float("-inf")

    def observe(self, version: str, reference: Mapping[str, Any], rows: np.ndarray,
                scores: np.ndarray) -> None:
        """Account one scored batch of model ``version`` (whose manifest has ``reference``).

        Never raises: monitoring must not fail a batch. A reference it cannot use (malformed
        histograms) switches drift measurement off for that model version, with one log line.
        """
        try:
            self._observe(version, reference, rows, scores)
        except Exception:
            logger.exception("drift measurement failed, off for this model version=%s", version)
            self.window = None

    def _observe(self, version: str, reference: Mapping[str, Any], rows: np.ndarray,
                 scores: np.ndarray) -> None:
        if version != self.version:
            self._switch(version, reference)
        if self.window is None:
            return
        missing = self.window.add(rows, scores)
        if missing.any():
            for i in np.flatnonzero(missing):
                self.metrics.missing_values.labels(self.feature_names[i]).inc(int(missing[i]))
        now = self.clock()
        if now - self._published_at >= self.interval and self.window.rows >= self.min_rows:
            self._published_at = now
            self.publish()

    def publish(self) -> None:
        """Set the drift gauges from the window as it is now."""
        if self.window is None:
            return
        for name, stats in self.window.statistics().items():
            for method, value in stats.items():
                if name == SCORE:
                    self.metrics.score_drift.labels(method).set(value)
                else:
                    self.metrics.feature_drift.labels(name, method).set(value)
        self.metrics.drift_window_rows.set(self.window.rows)

    def _switch(self, version: str, reference: Mapping[str, Any]) -> None:
        self.version = version
        self._published_at = float("-inf")
        # Statistics of the previous model's window say nothing about the new one.
        self.metrics.feature_drift.clear()
        self.metrics.score_drift.clear()
        self.metrics.drift_window_rows.set(0)
        try:
            self.window = DriftWindow(reference, self.feature_names, self.window_rows)
        except (KeyError, TypeError) as exc:
            logger.warning("model has no usable reference histograms, drift not measured "
                           "version=%s error=%r", version, exc)
            self.window = None
