"""Batched scoring: one ``predict_proba`` per micro-batch, thresholds to decisions, reasons."""

from __future__ import annotations

import time

import numpy as np

from fraudstream.features import FEATURE_NAMES
from fraudstream.model_registry.artifact import ArtifactError, LoadedModel
from fraudstream.workers.flat_forest import FLAT_MAX_ROWS, Probabilities, verified_flat

DECISIONS = ("approve", "review", "decline")
MAX_REASONS = 3
#: Rows on which a model's flat trees must give exactly its own probabilities.
PROBE_ROWS = 512
#: Longest the flat trees may take on ``FLAT_MAX_ROWS`` rows (the best of a few timed calls
#: at load) for their batches to be scored on the event loop itself instead of in the
#: guard's thread. Alone they take about 2 ms; in the workers the hand-off to the thread and
#: back made the scoring step's p99 26-44 ms against 12-18 ms on the loop (README,
#: "Benchmark", 2026-12-05 (ab)).
QUICK_BUDGET_S = 0.01


def limit_model_threads() -> None:
    """One OpenMP/BLAS thread per process, for every entry point that scores.

    Workers score micro-batches; OpenMP threads of several processes on the same cores spin
    against each other (measured: two workers ran four times slower than one until this).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


class Scorer:
    """Scores feature rows with a verified model and turns scores into decisions."""

    def __init__(self, model: LoadedModel) -> None:
        names = list(model.manifest.feature_names)
        if names != list(FEATURE_NAMES):
            raise ArtifactError(
                f"model {model.version} was trained on features {names}, but this worker "
                f"computes {list(FEATURE_NAMES)}; retrain with `fraudstream train`")
        self.model = model
        self.review = model.manifest.review_threshold
        self.decline = model.manifest.decline_threshold
        p99 = model.manifest.reference.get("feature_p99")
        self._p99 = np.asarray(p99, dtype=np.float64) if p99 else None
        probe = probe_rows(self._p99)
        self._flat = verified_flat(model.estimator, probe)
        self._flat_quick = self._flat is not None and flat_time_s(
            self._flat, probe[:FLAT_MAX_ROWS]) <= QUICK_BUDGET_S

    @property
    def version(self) -> str:
        return self.model.version

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Fraud probability for each row."""
        if self._flat is not None and len(rows) <= FLAT_MAX_ROWS:
            return self._flat.probabilities(rows)
        return np.asarray(self.model.estimator.predict_proba(rows)[:, 1], dtype=np.float64)

    def quick(self, rows: int) -> bool:
        """Whether ``score`` of this many rows takes the flat trees, timed at load within
        ``QUICK_BUDGET_S``: fixed work per row in NumPy, nothing that can hang."""
        return self._flat_quick and rows <= FLAT_MAX_ROWS

    def decide(self, score: float) -> str:
        if score >= self.decline:
            return "decline"
        if score >= self.review:
            return "review"
        return "approve"

    def reasons(self, rows: np.ndarray) -> list[list[str]]:
        """Up to three features per row that sit above the training data's 99th percentile."""
        if self._p99 is None or rows.size == 0:
            return [[] for _ in range(len(rows))]
        ratio = rows / np.where(self._p99 > 0, self._p99, 1.0)
        # One sort for the whole batch: 0.7-1.7 us a row alone, against 3.1-4.4 us a sort per row.
        top = np.argsort(-ratio, axis=1)[:, :MAX_REASONS]
        above = np.take_along_axis(ratio, top, axis=1) > 1.0
        names = FEATURE_NAMES
        return [[names[i] for i, shown in zip(row, flags, strict=True) if shown]
                for row, flags in zip(top.tolist(), above.tolist(), strict=True)]


def flat_time_s(flat: Probabilities, rows: np.ndarray, tries: int = 3) -> float:
    """The shortest of ``tries`` timed calls of ``flat`` on ``rows``."""
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        flat.probabilities(rows)
        best = min(best, time.perf_counter() - started)
    return best


def probe_rows(p99: np.ndarray | None, n: int = PROBE_ROWS) -> np.ndarray:
    """Rows spread over each feature's range (its training 99th percentile, when the
    manifest has it, else several magnitudes), with zeros and missing values among them."""
    rng = np.random.default_rng(0)
    width = len(FEATURE_NAMES)
    scale = (np.where(p99 > 0, p99, 1.0) if p99 is not None and len(p99) == width
             else rng.choice([0.1, 1.0, 10.0, 1000.0], size=width))
    rows = rng.uniform(0.0, 1.5, size=(n, width)) * scale
    rows[rng.random(rows.shape) < 0.05] = 0.0
    rows[rng.random(rows.shape) < 0.05] = np.nan
    return rows
