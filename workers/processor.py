"""The scoring step for one micro-batch of raw records, independent of Faust.

Every record ends in exactly one of the scores or dead-letter topics. The processor reads and
writes its feature state through a ``StateTable`` and writes output to a ``Sink``, so the same
code runs in the Faust agent, in the benchmark's raw loop and in unit tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from aiokafka.errors import KafkaError

from fraudstream.features import FEATURE_NAMES, compute_features
from fraudstream.monitoring.drift_window import DriftMonitor
from fraudstream.monitoring.metrics import WorkerMetrics, observe_many
from fraudstream.workers.card_record import CardRecord, Decision, decisions_window_s
from fraudstream.workers.merchant_states import MerchantStates
from fraudstream.workers.messages import dead_letter_record, iso_now, output_key, score_record
from fraudstream.workers.model_guard import ModelGuard
from fraudstream.workers.output import Sink, is_record_error, key_partition
from fraudstream.workers.scoring import Scorer
from fraudstream.workers.state_tables import StateTable
from fraudstream.workers.validation import (
    DEFAULT_CLOCK_SKEW_S,
    Rejection,
    Transaction,
    excerpt,
    validate,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A consumed record: where it came from and its exact bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(frozen=True)
class Topics:
    scores: str
    dlq: str


class ScoringProcessor:
    """Validates, featurises, scores and routes one batch; updates the card table once per card."""

    def __init__(self, *, scorer: Scorer, cards: StateTable, merchants: MerchantStates,
                 sink: Sink, topics: Topics,
                 metrics: WorkerMetrics, worker_name: str, label_delay_days: int,
                 max_message_bytes: int, clock: Callable[[], float] = time.time,
                 guard: ModelGuard | None = None,
                 drift: DriftMonitor | None = None, emit_features: bool = False,
                 max_clock_skew_s: float = DEFAULT_CLOCK_SKEW_S,
                 partitions: int | None = None) -> None:
        """``partitions``: the transactions topic's partition count; given, a record on
        another partition than its key's (Kafka's default partitioner) is dead-lettered."""
        self.scorer = scorer
        #: The version served before the last swap: the first fallback when the model fails.
        self.previous: Scorer | None = None
        #: A model scoring the same batches for comparison only (metrics), never deciding.
        self.shadow: Scorer | None = None
        self.guard = guard or ModelGuard(metrics)
        self.cards = cards
        self.merchants = merchants
        self.sink = sink
        self.topics = topics
        self.metrics = metrics
        self.worker_name = worker_name
        self.delay = label_delay_days
        self.max_bytes = max_message_bytes
        self.clock = clock
        self.drift = drift
        self.emit_features = emit_features
        self.max_skew_s = max_clock_skew_s
        self.partitions = partitions
        #: Whether the last ``process`` call got all its outputs acknowledged.
        self._outputs_written = False
        #: Per partition, the newest transaction time (event time) decided here: the clock
        #: of card expiry (workers.card_expiry).
        self.newest_event_s: dict[int, int] = {}

    def swap_scorer(self, scorer: Scorer) -> None:
        """Use another model from the next batch on (never inside a batch)."""
        if scorer is not self.scorer:
            self.previous, self.scorer = self.scorer, scorer

    def set_shadow(self, scorer: Scorer | None) -> None:
        """Shadow-score with ``scorer`` from the next batch on (None stops it)."""
        self.shadow = scorer

    async def process_isolated(self, batch: Sequence[RawRecord], error: Exception) -> None:
        """After a batch failed: retry record by record, dead-letter what fails.

        A bug, or an output Kafka refuses (too large, invalid), that breaks on one record must
        neither lose the batch nor crash-loop the worker. A record whose output Kafka refused
        is dead-lettered in part (sizes and hashes, no payload). Kafka being unavailable is not
        the record's fault: that error propagates and nothing is dead-lettered, since the
        record's score may already be written.
        """
        logger.error("batch failed, retrying one by one size=%d error=%s", len(batch),
                     type(error).__name__)
        at = iso_now(self.clock())
        for rec in batch:
            try:
                await self.process([rec])
            except Exception as exc:
                refused = is_record_error(exc)
                if isinstance(exc, KafkaError) and not refused:
                    raise
                if self._outputs_written:
                    # It failed after its output was acknowledged: that output stands.
                    logger.error("record failed after its output was written topic=%s "
                                 "partition=%s offset=%s error=%s", rec.topic, rec.partition,
                                 rec.offset, type(exc).__name__)
                    continue
                code = "output_rejected" if refused else "processing_error"
                logger.error("record failed topic=%s partition=%s offset=%s error=%s",
                             rec.topic, rec.partition, rec.offset, type(exc).__name__)
                reason = (f"Kafka refused this record's output ({type(exc).__name__}); the "
                          "payload is left out, its size and SHA-256 identify it" if refused
                          else f"the worker failed on this record ({type(exc).__name__}: "
                          f"{excerpt(str(exc), 200)}); report it with this record attached")
                self.sink.add(self.topics.dlq, output_key(rec.key), dead_letter_record(
                    topic=rec.topic, partition=rec.partition, offset=rec.offset,
                    payload=b"" if refused else rec.value, error=code, reason=reason,
                    dead_lettered_at=at, key=rec.key, max_bytes=self.max_bytes), rec.partition)
                self.sink.mark_consumed(rec.partition, rec.offset + 1)
                await self.sink.flush()
                self.metrics.dead_lettered.labels(code).inc()

    async def _shadow_score(self, shadow: Scorer, matrix: np.ndarray, used: Any,
                            scores: np.ndarray) -> None:
        shadow_scores = await self.guard.shadow(shadow, matrix)
        if shadow_scores is None:
            return
        self.metrics.shadow_scored.inc(len(shadow_scores))
        differ = sum(1 for a, b in zip(scores.tolist(), shadow_scores.tolist(), strict=True)
                     if used.decide(a) != shadow.decide(b))
        if differ:
            self.metrics.shadow_disagreed.inc(differ)

    async def process(self, batch: Sequence[RawRecord]) -> None:
        """Route every record of ``batch``; returns once all output is acknowledged by Kafka."""
        self._outputs_written = False
        now = self.clock()
        # One model per batch: a swap during this batch applies from the next one.
        scorer, previous, shadow = self.scorer, self.previous, self.shadow
        at = iso_now(now)
        dead: list[tuple[RawRecord, Rejection]] = []
        touched: dict[bytes, tuple[int, CardRecord]] = {}
        pending: list[tuple[RawRecord, Transaction, CardRecord]] = []
        rows: list[list[float]] = []
        replays: list[tuple[RawRecord, Transaction, Decision]] = []
        # Outputs go to the partition their input came from (same number): a worker taking a
        # partition over can then read what its predecessor already wrote (workers.takeover).
        out: list[tuple[str, bytes | None, bytes, int]] = []
        self.metrics.consumed.inc(len(batch))

        for rec in batch:
            result = validate(rec.value, now, self.max_bytes, self.max_skew_s)
            if isinstance(result, Rejection):
                dead.append((rec, result))
                continue
            key = result.card_id.encode()
            if rec.key != key:
                shown = "none" if rec.key is None else (
                    f"of {len(rec.key)} bytes {excerpt(rec.key.decode('utf-8', 'replace'))}")
                dead.append((rec, Rejection(
                    "bad_key", f"record key {shown} is not the card_id {result.card_id!r}; "
                    "produce transactions keyed by card_id so each card's state stays on one "
                    "partition")))
                continue
            entry = touched.get(key)
            if entry is None or entry[0] != rec.partition:
                wrong = self._wrong_partition(key, rec.partition)
                if wrong is not None:
                    dead.append((rec, wrong))
                    continue
            if entry is None:
                entry = touched[key] = (rec.partition,
                                        CardRecord.from_wire(self.cards.get(key, rec.partition)))
            card = entry[1]
            seen = card.find(result.transaction_id)
            if seen is not None:
                if (seen.partition, seen.offset) == (rec.partition, rec.offset):
                    replays.append((rec, result, seen))
                else:
                    dead.append((rec, Rejection(
                        "duplicate_transaction", f"transaction_id {result.transaction_id} was "
                        f"already decided ({seen.decision}, partition {seen.partition} offset "
                        f"{seen.offset}); a transaction is decided once")))
                continue
            if result.ts > self.newest_event_s.get(rec.partition, -1):
                self.newest_event_s[rec.partition] = result.ts
            # Read-only here: decoded once per value the merchants table holds.
            merchant = self.merchants.get(result.merchant_id.encode())
            rows.append(compute_features(result.ts, result.amount, card.state, merchant,
                                         self.delay))
            pending.append((rec, result, card))
            # Remember the id now so a duplicate later in this same batch is caught.
            card.remember(Decision(result.transaction_id, result.ts, rec.partition, rec.offset,
                                   -1.0, "", ""))

        if rows:
            matrix = np.asarray(rows, dtype=np.float64)
            self.guard.chaos.corrupt_features(matrix)
            self._count_missing(matrix)
            started = time.perf_counter()
            answer = await self.guard.score(scorer, matrix, (previous,))
            self.metrics.model_latency.observe(time.perf_counter() - started)
            used, scores = answer.scorer, answer.scores
            if self.drift is not None and not answer.degraded:
                # A fallback's scores (rules) say nothing about the model's score drift.
                self.drift.observe(used.version, cast(Scorer, used).model.manifest.reference,
                                   matrix, scores, event_times=np.fromiter(
                                       (tx.ts for _rec, tx, _card in pending), np.float64,
                                       len(pending)))
            reasons = used.reasons(matrix)
            if shadow is not None:
                await self._shadow_score(shadow, matrix, used, scores)
            for (rec, tx, card), score, codes, row in zip(pending, scores.tolist(), reasons,
                                                          rows, strict=True):
                decision = used.decide(score)
                card.settle(tx.transaction_id, score, decision, used.version)
                out.append((self.topics.scores, rec.key, score_record(
                    transaction_id=tx.transaction_id, card_id=tx.card_id, score=score,
                    decision=decision, model_version=used.version, degraded=answer.degraded,
                    worker=self.worker_name, scored_at=at, ingested_at_ms=rec.timestamp_ms,
                    reasons=codes, partition=rec.partition, offset=rec.offset,
                    features=dict(zip(FEATURE_NAMES, row, strict=True))
                    if self.emit_features else None), rec.partition))
                self.metrics.decisions.labels(decision).inc()
        for rec, tx, seen in replays:
            out.append((self.topics.scores, rec.key, score_record(
                transaction_id=tx.transaction_id, card_id=tx.card_id, score=seen.score,
                decision=seen.decision, model_version=seen.model_version, degraded=False,
                worker=self.worker_name, scored_at=at, ingested_at_ms=rec.timestamp_ms,
                reasons=[], partition=rec.partition, offset=rec.offset), rec.partition))
        for rec, rejection in dead:
            out.append((self.topics.dlq, output_key(rec.key), dead_letter_record(
                topic=rec.topic, partition=rec.partition, offset=rec.offset, payload=rec.value,
                error=rejection.error, reason=rejection.reason, dead_lettered_at=at,
                key=rec.key, max_bytes=self.max_bytes), rec.partition))
            self.metrics.dead_lettered.labels(rejection.error).inc()
        window = decisions_window_s(self.delay)
        states = [(key, partition, card.to_wire(window))
                  for key, (partition, card) in touched.items()]
        if self.sink.atomic:
            # One transaction per input partition: state, outputs and consumed offset.
            staged = self.cards.stage(states)
            self._add_outputs(out, batch)
            started = time.perf_counter()
            try:
                acked = await self.sink.flush()
            except BaseException:
                # Other partitions of the batch may have committed: their state stands.
                self.cards.apply(staged, self.sink.committed)
                raise
            self.metrics.commit_latency.observe(time.perf_counter() - started)
            self.cards.apply(staged, acked)
        else:
            # State first: once it is durable, a crash replay of this batch finds every
            # decision and re-emits it unchanged instead of deciding again.
            started = time.perf_counter()
            await self.cards.put_many(states)
            self._add_outputs(out, batch)
            await self.sink.flush()
            self.metrics.commit_latency.observe(time.perf_counter() - started)
        self._outputs_written = True
        done, fenced = self.clock(), self.sink.fenced
        if fenced:
            self.metrics.fenced_records.inc(sum(1 for r in batch if r.partition in fenced))
        scored = sum(1 for rec, _tx, _card in pending if rec.partition not in fenced) + sum(
            1 for rec, _tx, _seen in replays if rec.partition not in fenced)
        self.metrics.scored.inc(scored)
        self.metrics.batch_size.observe(len(batch))
        ingested_ms = np.fromiter((rec.timestamp_ms for rec, _tx, _card in pending
                                   if rec.partition not in fenced), np.float64)
        observe_many(self.metrics.end_to_end_latency,
                     np.maximum(done - ingested_ms / 1000.0, 0.0))
        if dead:
            logger.info("dead-lettered count=%d first_error=%s", len(dead), dead[0][1].error)

    def _add_outputs(self, out: list[tuple[str, bytes | None, bytes, int]],
                     batch: Sequence[RawRecord]) -> None:
        for topic, out_key, value, partition in out:
            self.sink.add(topic, out_key, value, partition)
        for rec in batch:
            self.sink.mark_consumed(rec.partition, rec.offset + 1)

    def _count_missing(self, matrix: np.ndarray) -> None:
        """Count non-finite feature values by feature, before any model sees them (a model
        that refuses NaN fails over to the rules, which must not hide them)."""
        missing = (~np.isfinite(matrix)).sum(axis=0)
        for i in np.flatnonzero(missing):
            self.metrics.missing_values.labels(FEATURE_NAMES[i]).inc(int(missing[i]))

    def _wrong_partition(self, key: bytes, partition: int) -> Rejection | None:
        """Why a record keyed ``key`` must not be read from ``partition``, or None."""
        if not self.partitions:
            return None
        expected = key_partition(key, self.partitions)
        if expected == partition:
            return None
        return Rejection("wrong_partition", f"the record is on partition {partition}, but its "
                         f"key belongs on partition {expected} of {self.partitions} under "
                         "Kafka's default partitioner (murmur2); the card's state lives there. "
                         "Produce with the Java client's default partitioner (librdkafka: "
                         "partitioner=murmur2_random) or leave the partition unset")
