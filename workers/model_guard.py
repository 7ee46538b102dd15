"""Model redundancy for batched scoring: a model that raises or is too slow on a batch is
replaced for that batch by a fallback (the previous version, else rules), marked degraded.

Scoring never stops on a model's account. With a timeout the model runs in a thread and the
event loop waits at most ``timeout_s``; a call that overran keeps its thread until it ends,
and while it runs that model is skipped (its next batches go straight to the fallback) so
stuck calls never pile up. A batch the scorer calls ``quick`` (a few milliseconds of NumPy
that cannot hang: the rules, a model's flat trees timed at load) is scored on the event loop
itself, unless a chaos fault is injected into the model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fraudstream.features import FEATURE_NAMES
from fraudstream.monitoring.metrics import WorkerMetrics

logger = logging.getLogger(__name__)

RULES_VERSION = "rules-v1"


class BatchScorer(Protocol):
    """What scoring needs of a model: scores, decisions and reasons for a feature matrix."""

    @property
    def version(self) -> str: ...

    def score(self, rows: np.ndarray) -> np.ndarray: ...

    def decide(self, score: float) -> str: ...

    def reasons(self, rows: np.ndarray) -> list[list[str]]: ...

    def quick(self, rows: int) -> bool:
        """Whether scoring this many rows is bounded and short enough for the event loop."""
        ...


class RulesScorer:
    """The last-resort scorer: a few fixed rules over the same features, never raising.

    Large amounts, a merchant with recent confirmed fraud, and an amount far above the
    card's own habit (the Handbook's three fraud scenarios) raise the score.
    """

    version = RULES_VERSION
    review = 0.3
    decline = 0.8

    def __init__(self, feature_names: Sequence[str] = FEATURE_NAMES) -> None:
        index = {name: i for i, name in enumerate(feature_names)}
        self._amount = index.get("amount")
        self._ratio = index.get("card_amount_to_avg_30d")
        self._risk = [i for n, i in index.items() if n.startswith("merchant_risk_")]

    def score(self, rows: np.ndarray) -> np.ndarray:
        out = np.full(len(rows), 0.05)
        if len(rows) == 0:
            return out
        if self._amount is not None:
            out = np.maximum(out, np.where(rows[:, self._amount] > 220.0, 0.85, 0.05))
        if self._risk:
            out = np.maximum(out, np.clip(rows[:, self._risk].max(axis=1), 0.0, 1.0))
        if self._ratio is not None:
            out = np.maximum(out, np.where(rows[:, self._ratio] > 5.0, 0.5, 0.05))
        return np.nan_to_num(out, nan=0.05)

    def decide(self, score: float) -> str:
        if score >= self.decline:
            return "decline"
        return "review" if score >= self.review else "approve"

    def reasons(self, rows: np.ndarray) -> list[list[str]]:
        return [["rules_fallback"] for _ in range(len(rows))]

    def quick(self, rows: int) -> bool:
        return True


class ModelFailure(RuntimeError):
    """A model raised, returned unusable scores, or timed out; ``reason`` is error|timeout."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class ChaosState:
    """Faults injected into scoring (chaos tests): the current model delayed and/or failing,
    and features computed as NaN (a feature bug)."""

    delay_s: float = 0.0
    fail: bool = False
    #: Columns of the feature matrix made NaN before the model sees them.
    nan_columns: tuple[int, ...] = ()

    @property
    def injects_into_model(self) -> bool:
        return self.delay_s > 0 or self.fail

    def corrupt_features(self, matrix: np.ndarray) -> None:
        if self.nan_columns:
            matrix[:, list(self.nan_columns)] = np.nan


@dataclass(frozen=True)
class Answer:
    """The scores of a batch and who gave them."""

    scorer: BatchScorer
    scores: np.ndarray
    degraded: bool
    reason: str = ""


class ModelGuard:
    """Calls the model for a batch with a timeout; falls back when it fails."""

    def __init__(self, metrics: WorkerMetrics, timeout_s: float | None = None,
                 chaos: ChaosState | None = None, rules: RulesScorer | None = None) -> None:
        self.metrics = metrics
        self.timeout_s = timeout_s if timeout_s and timeout_s > 0 else None
        self.chaos = chaos or ChaosState()
        self.rules = rules or RulesScorer()
        self._executor: ThreadPoolExecutor | None = None
        self._busy: set[int] = set()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def score(self, primary: BatchScorer, rows: np.ndarray,
                    fallbacks: Sequence[BatchScorer | None] = ()) -> Answer:
        """Scores of ``rows`` by ``primary``, or by the first fallback that answers."""
        try:
            scores = await self._call(primary, rows, inject=True)
            self.metrics.scoring_degraded.set(0)
            return Answer(primary, scores, False)
        except ModelFailure as exc:
            failure = exc
        logger.warning("model failed, falling back version=%s reason=%s error=%s",
                       primary.version, failure.reason, failure)
        self.metrics.model_fallback.labels(failure.reason).inc()
        self.metrics.scoring_degraded.set(1)
        for fallback in (*fallbacks, self.rules):
            if fallback is None or fallback is primary:
                continue
            try:
                scores = await self._call(fallback, rows, inject=False)
            except ModelFailure as exc:
                logger.warning("fallback failed too version=%s error=%s", fallback.version, exc)
                continue
            self.metrics.degraded.inc(len(rows))
            return Answer(fallback, scores, True, failure.reason)
        raise RuntimeError("the rules fallback failed") from failure

    async def shadow(self, shadow: BatchScorer, rows: np.ndarray) -> np.ndarray | None:
        """Scores by the shadow model, or None if it fails (it never decides anything)."""
        try:
            return await self._call(shadow, rows, inject=False)
        except ModelFailure as exc:
            logger.info("shadow model failed version=%s error=%s", shadow.version, exc)
            return None

    async def _call(self, scorer: BatchScorer, rows: np.ndarray, inject: bool) -> np.ndarray:
        if self.timeout_s is None or (scorer.quick(len(rows)) and not (
                inject and self.chaos.injects_into_model)):
            try:
                return self._invoke(scorer, rows, inject)
            except ModelFailure:
                raise
            except Exception as exc:
                raise ModelFailure(f"{type(exc).__name__}: {exc}", "error") from exc
        if id(scorer) in self._busy:
            raise ModelFailure(f"still busy with a batch that overran {self.timeout_s}s",
                               "timeout")
        if self._executor is None:
            from fraudstream.workers.scoring import limit_model_threads

            # OpenMP's thread count is per calling thread: each model thread gets one too,
            # or its threads spin against the other workers' (measured: 1 s per batch).
            self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="model",
                                                initializer=limit_model_threads)
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, self._invoke, scorer, rows, inject)
        key = id(scorer)
        self._busy.add(key)
        future.add_done_callback(lambda _f: self._busy.discard(key))
        try:
            async with asyncio.timeout(self.timeout_s):
                return await asyncio.shield(future)
        except TimeoutError as exc:
            # The thread goes on; retrieve its outcome later so nothing is logged as lost.
            future.add_done_callback(lambda f: f.exception())
            raise ModelFailure(f"no answer within {self.timeout_s}s", "timeout") from exc
        except ModelFailure:
            raise
        except Exception as exc:
            raise ModelFailure(f"{type(exc).__name__}: {exc}", "error") from exc

    def _invoke(self, scorer: BatchScorer, rows: np.ndarray, inject: bool) -> np.ndarray:
        if inject:
            delay, fail = self.chaos.delay_s, self.chaos.fail
            if delay > 0:
                time.sleep(delay)
            if fail:
                raise ModelFailure("chaos: the model was told to fail", "error")
        scores = np.asarray(scorer.score(rows), dtype=np.float64)
        if scores.shape != (len(rows),) or not np.all(np.isfinite(scores)) or (
                scores.size and (scores.min() < 0.0 or scores.max() > 1.0)):
            raise ModelFailure(f"unusable scores (shape {scores.shape})", "error")
        return scores
