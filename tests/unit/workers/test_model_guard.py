"""Model redundancy in the scoring step: fallbacks on errors and timeouts, swaps, shadow."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from fraudstream.features import FEATURE_NAMES
from fraudstream.model_registry.artifact import LoadedModel, ModelManifest
from fraudstream.monitoring.metrics import WorkerMetrics
from fraudstream.workers.model_guard import RULES_VERSION, ChaosState, ModelGuard, RulesScorer
from fraudstream.workers.scoring import Scorer
from tests.unit.workers.test_processor import AmountModel, Harness, tx


class Broken:
    n_features_in_ = len(FEATURE_NAMES)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        raise ValueError("boom")


class Slow(AmountModel):
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        time.sleep(0.5)
        return super().predict_proba(x)


def scorer(version: str, model: object) -> Scorer:
    manifest = ModelManifest(version=version, family="test", feature_names=list(FEATURE_NAMES),
                             sha256="", created_at="", review_threshold=0.3,
                             decline_threshold=0.8)
    return Scorer(LoadedModel(manifest, model))


def scores(h: Harness) -> list[dict]:
    return [orjson.loads(v) for t, _k, v, _p in h.sink.records if t == "scores"]


def test_a_failing_model_is_replaced_by_the_previous_version_then_rules() -> None:
    h = Harness()
    h.processor.swap_scorer(scorer("v-broken", Broken()))
    h.run([h.record(tx(1, 900.0)), h.record(tx(2, 10.0))])
    out = scores(h)
    assert {s["model_version"] for s in out} == {"v-test"}
    assert all(s["degraded"] for s in out) and out[0]["decision"] == "decline"
    reg = h.registry
    assert reg.get_sample_value("fraudstream_model_fallback_total", {"reason": "error"}) == 1
    assert reg.get_sample_value("fraudstream_degraded_scores_total") == 2
    assert reg.get_sample_value("fraudstream_scoring_degraded") == 1
    # No previous version: the rules answer.
    h2 = Harness()
    h2.processor.scorer = scorer("v-broken", Broken())
    h2.run([h2.record(tx(1, 900.0))])
    assert scores(h2)[0]["model_version"] == RULES_VERSION and scores(h2)[0]["degraded"]
    # A healthy batch clears the gauge, and scores are not degraded.
    h.processor.swap_scorer(scorer("v-good", AmountModel()))
    h.run([h.record(tx(3, 10.0))])
    assert scores(h)[-1]["model_version"] == "v-good" and not scores(h)[-1]["degraded"]
    assert reg.get_sample_value("fraudstream_scoring_degraded") == 0


def test_a_slow_model_times_out_and_is_skipped_while_busy() -> None:
    registry = CollectorRegistry()
    guard = ModelGuard(WorkerMetrics.create(registry), timeout_s=0.05)
    slow, fallback = scorer("v-slow", Slow()), scorer("v-prev", AmountModel())
    rows = np.zeros((3, len(FEATURE_NAMES)))

    async def two_batches() -> tuple[str, str, bool]:
        first = await guard.score(slow, rows, (fallback,))
        second = await guard.score(slow, rows, (fallback,))
        return first.scorer.version, second.scorer.version, second.degraded

    assert asyncio.run(two_batches()) == ("v-prev", "v-prev", True)
    assert registry.get_sample_value("fraudstream_model_fallback_total",
                                     {"reason": "timeout"}) == 2
    guard.close()


def test_chaos_state_breaks_and_heals_the_current_model() -> None:
    chaos = ChaosState(fail=True)
    guard = ModelGuard(WorkerMetrics.create(CollectorRegistry()), chaos=chaos)
    rows = np.zeros((2, len(FEATURE_NAMES)))
    current = scorer("v1", AmountModel())
    assert asyncio.run(guard.score(current, rows)).scorer.version == RULES_VERSION
    chaos.fail = False
    assert not asyncio.run(guard.score(current, rows)).degraded


def test_shadow_scores_are_counted_never_emitted() -> None:
    h = Harness()
    h.processor.set_shadow(scorer("v-shadow", Broken()))
    h.run([h.record(tx(1, 10.0))])
    h.processor.set_shadow(scorer("v-shadow2", AmountModel()))
    h.run([h.record(tx(2, 10.0)), h.record(tx(3, 900.0))])
    assert {s["model_version"] for s in scores(h)} == {"v-test"}
    assert h.registry.get_sample_value("fraudstream_shadow_scored_total") == 2
    assert h.registry.get_sample_value("fraudstream_shadow_disagreed_total") == 0


def test_rules_scorer_flags_large_amounts_and_risky_merchants() -> None:
    rules = RulesScorer()
    rows = np.zeros((3, len(FEATURE_NAMES)))
    rows[0, FEATURE_NAMES.index("amount")] = 500.0
    rows[1, FEATURE_NAMES.index("merchant_risk_7d")] = 0.9
    decisions = [rules.decide(s) for s in rules.score(rows)]
    assert decisions == ["decline", "decline", "approve"]


class Quick:
    """A scorer that says it is quick and records the thread that scores it."""

    version = "v-quick"
    threads: list[str]

    def __init__(self) -> None:
        self.threads = []

    def score(self, rows: np.ndarray) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        return np.full(len(rows), 0.1)

    def decide(self, score: float) -> str:
        return "approve"

    def reasons(self, rows: np.ndarray) -> list[list[str]]:
        return [[] for _ in range(len(rows))]

    def quick(self, rows: int) -> bool:
        return True


def test_a_quick_scorer_runs_on_the_event_loop_unless_chaos_slows_it() -> None:
    chaos = ChaosState()
    guard = ModelGuard(WorkerMetrics.create(CollectorRegistry()), timeout_s=0.05, chaos=chaos)
    quick, rows = Quick(), np.zeros((2, len(FEATURE_NAMES)))
    assert not asyncio.run(guard.score(quick, rows)).degraded
    assert quick.threads == [threading.current_thread().name]
    # An injected delay must still be cut off by the timeout (inline, the loop would sleep
    # through it and the model would answer): in a thread, the rules answer at the timeout.
    chaos.delay_s = 0.5
    started = time.monotonic()
    answer = asyncio.run(guard.score(quick, rows))
    assert time.monotonic() - started < 0.4
    assert answer.degraded and answer.reason == "timeout"
    assert answer.scorer.version == RULES_VERSION
    guard.close()
