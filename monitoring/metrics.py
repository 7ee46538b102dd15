"""All Prometheus metrics of a scoring worker, in one container built by ``create``.

Base units, ``_total`` counters, and only bounded label values (never a card or transaction id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
MODEL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                 0.5, 1.0)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000)
#: Score edges of the labelled-score histogram: the group's average precision ranks labelled
#: decisions by these buckets (finer where fraud scores crowd, at both ends).
SCORE_EDGES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
               0.99, 1.0)


@dataclass(frozen=True)
class WorkerMetrics:
    """The metrics a scoring worker exports on /metrics."""

    registry: CollectorRegistry
    consumed: Counter
    scored: Counter
    dead_lettered: Counter
    decisions: Counter
    labels_applied: Counter
    end_to_end_latency: Histogram
    arrival_age: Histogram
    batch_wait: Histogram
    model_latency: Histogram
    commit_latency: Histogram
    batch_size: Histogram
    model_info: Gauge
    model_validation: Gauge
    degraded: Counter
    worker_up: Gauge
    assigned_partitions: Gauge
    takeover_skipped: Counter
    fenced_records: Counter
    cards_expired: Counter
    card_store_memory: Gauge
    gc_pause: Histogram
    offsets_gap_filled: Counter
    offsets_redelivered: Counter
    offsets_past_end: Counter
    model_refused: Counter
    model_swaps: Counter
    model_fallback: Counter
    scoring_degraded: Gauge
    shadow_scored: Counter
    shadow_disagreed: Counter
    registry_store_up: Gauge
    # Drift, data quality, consumer lag and live model performance (monitoring/*.py).
    feature_drift: Gauge
    score_drift: Gauge
    drift_window_rows: Gauge
    feature_drift_threshold: Gauge
    score_drift_threshold: Gauge
    feature_drift_warming: Gauge
    feature_drift_excluded: Gauge
    drift_history_seconds: Gauge
    missing_values: Counter
    consumer_lag: Gauge
    labels_matched: Counter
    live_outcomes: Counter
    live_precision: Gauge
    live_recall: Gauge
    live_average_precision: Gauge
    live_labelled_scores: Histogram
    live_frauds: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None, prefix: str = "fraudstream",
               refusal_reasons: Sequence[str] = ()) -> WorkerMetrics:
        """Build (and register) every worker metric in ``registry``.

        ``refusal_reasons``: the values of ``model_refused``'s ``reason`` label, created at 0
        (``ModelRefused.REASONS``; the registry's errors sit above this module).
        """
        reg = registry if registry is not None else CollectorRegistry()
        ProcessCollector(registry=reg)
        p = prefix
        metrics = cls(
            registry=reg,
            consumed=Counter(f"{p}_transactions_consumed", "Records read from the transactions "
                             "topic", registry=reg),
            scored=Counter(f"{p}_transactions_scored", "Transactions scored and written to the "
                           "scores topic", registry=reg),
            dead_lettered=Counter(f"{p}_transactions_dead_lettered", "Records sent to the "
                                  "dead-letter topic, by error code", ["error"], registry=reg),
            decisions=Counter(f"{p}_decisions", "Decisions by outcome", ["decision"],
                              registry=reg),
            labels_applied=Counter(f"{p}_labels_applied", "Fraud labels applied to merchant "
                                   "features, by outcome", ["outcome"], registry=reg),
            end_to_end_latency=Histogram(f"{p}_end_to_end_latency_seconds", "From the "
                                         "transaction's arrival in Kafka to its score being "
                                         "written", buckets=LATENCY_BUCKETS, registry=reg),
            arrival_age=Histogram(f"{p}_record_arrival_age_seconds", "From the "
                                  "transaction's timestamp in Kafka to its arrival in the "
                                  "worker (its producer, the broker, the fetch)",
                                  buckets=LATENCY_BUCKETS, registry=reg),
            batch_wait=Histogram(f"{p}_batch_wait_seconds", "From the transaction's arrival "
                                 "in the worker to the start of its scoring batch (the batch "
                                 "window, the batches ahead of it)", buckets=LATENCY_BUCKETS,
                                 registry=reg),
            model_latency=Histogram(f"{p}_model_latency_seconds", "Time of one batched model "
                                    "call", buckets=MODEL_BUCKETS, registry=reg),
            commit_latency=Histogram(f"{p}_batch_commit_seconds", "Time to write one "
                                     "scoring batch's scores, dead letters, card changelog "
                                     "and consumed offsets to Kafka (its transactions under "
                                     "exactly once)", buckets=LATENCY_BUCKETS, registry=reg),
            batch_size=Histogram(f"{p}_batch_size", "Transactions per scoring batch",
                                 buckets=BATCH_BUCKETS, registry=reg),
            model_info=Gauge(f"{p}_model_info", "The model version in use (value 1)",
                             ["version", "family"], registry=reg),
            model_validation=Gauge(f"{p}_model_validation_ratio", "What validation measured "
                                   "for a model version on its held-out fold, by measure "
                                   "(flagged_precision, flagged_recall; flagged = review or "
                                   "decline): the live-performance alerts compare with it",
                                   ["model_version", "measure"], registry=reg),
            degraded=Counter(f"{p}_degraded_scores", "Scores given by a fallback model",
                             registry=reg),
            worker_up=Gauge(f"{p}_worker_ready", "1 when the worker is ready to score",
                            registry=reg),
            assigned_partitions=Gauge(f"{p}_assigned_partitions", "Transaction partitions "
                                      "assigned to this worker", registry=reg),
            card_store_memory=Gauge(f"{p}_card_store_memory_bytes", "Memory RocksDB holds for "
                                    "the card table on this worker, by kind (memtables, "
                                    "block_cache, table_readers)", ["kind"], registry=reg),
            gc_pause=Histogram(f"{p}_gc_pause_seconds", "Pauses of the cyclic garbage "
                               "collector (each stops the event loop), by generation",
                               ["generation"], buckets=MODEL_BUCKETS, registry=reg),
            cards_expired=Counter(f"{p}_cards_expired", "Idle cards removed from the card "
                                  "table (tombstoned in its changelog)", registry=reg),
            takeover_skipped=Counter(f"{p}_takeover_skipped", "Records consumed again after a "
                                     "takeover whose output the previous owner had already "
                                     "written (skipped, not decided twice)", registry=reg),
            fenced_records=Counter(f"{p}_fenced_records", "Records whose outputs were dropped "
                                   "because another worker had taken their partition (this "
                                   "worker's transaction was fenced; the owner decides them)",
                                   registry=reg),
            offsets_gap_filled=Counter(f"{p}_offsets_gap_filled", "Records the consumer skipped "
                                       "over (an offset gap), read from Kafka and processed",
                                       registry=reg),
            offsets_past_end=Counter(f"{p}_offsets_past_end", "Partitions whose committed "
                                     "offset was past their end when this worker took them "
                                     "(the topic was created again, or truncated): started "
                                     "from their first record", registry=reg),
            offsets_redelivered=Counter(f"{p}_offsets_redelivered", "Records delivered again "
                                        "after this worker had processed them (dropped)",
                                        registry=reg),
            model_refused=Counter(f"{p}_model_refused", "Model versions refused (not loaded), "
                                  "by reason", ["reason"], registry=reg),
            model_swaps=Counter(f"{p}_model_swaps", "Model versions swapped in between batches",
                                registry=reg),
            model_fallback=Counter(f"{p}_model_fallback", "Batches a fallback scored because the "
                                   "model failed, by reason", ["reason"], registry=reg),
            scoring_degraded=Gauge(f"{p}_scoring_degraded", "1 while the last batch was scored "
                                   "by a fallback", registry=reg),
            shadow_scored=Counter(f"{p}_shadow_scored", "Transactions also scored by the shadow "
                                  "model (never used to decide)", registry=reg),
            shadow_disagreed=Counter(f"{p}_shadow_disagreed", "Shadow-scored transactions whose "
                                     "shadow decision differs", registry=reg),
            registry_store_up=Gauge(f"{p}_registry_store_up", "1 when the model store answers, "
                                    "by store kind", ["store"], registry=reg),
            feature_drift=Gauge(f"{p}_feature_drift", "Drift of a feature's live distribution "
                                "(sliding window) from the model's reference, by method (psi, "
                                "js)", ["feature", "method"], registry=reg),
            score_drift=Gauge(f"{p}_score_drift", "Drift of the live score distribution from "
                              "the model's reference, by method (psi, js)", ["method"],
                              registry=reg),
            drift_window_rows=Gauge(f"{p}_drift_window_rows", "Scored rows in the drift "
                                    "window", registry=reg),
            feature_drift_threshold=Gauge(f"{p}_feature_drift_threshold", "PSI above which "
                                          "a feature's drift alerts, from the model's reference "
                                          "(the training data's own variability)", ["feature"],
                                          registry=reg),
            score_drift_threshold=Gauge(f"{p}_score_drift_threshold", "PSI above which the "
                                        "score's drift alerts, from the model's reference",
                                        registry=reg),
            feature_drift_warming=Gauge(f"{p}_feature_drift_warming_seconds", "Event-time "
                                        "history a feature (or the score) still lacks before "
                                        "its drift is measured, by reason (history: the state "
                                        "spans less than the feature's window; "
                                        "no_event_times: the worker passes no transaction "
                                        "times); absent once warm", ["feature", "reason"],
                                        registry=reg),
            feature_drift_excluded=Gauge(f"{p}_feature_drift_excluded", "Features left out of "
                                         "drift measurement (value 1), by reason (calendar: "
                                         "set by the hour of the week, not by the data)",
                                         ["feature", "reason"], registry=reg),
            drift_history_seconds=Gauge(f"{p}_drift_history_seconds", "Event-time history "
                                        "behind the worker's feature state, by family (card, "
                                        "merchant)", ["family"], registry=reg),
            missing_values=Counter(f"{p}_missing_values", "Feature values that were not finite "
                                   "(NaN or infinite) when scored, by feature", ["feature"],
                                   registry=reg),
            consumer_lag=Gauge(f"{p}_consumer_lag", "Records of an assigned transactions "
                               "partition not yet committed (high watermark - committed "
                               "offset)", ["partition"], registry=reg),
            labels_matched=Counter(f"{p}_labels_matched", "Labels matched to a remembered "
                                   "decision, by outcome (matched, unmatched, malformed)",
                                   ["outcome"], registry=reg),
            live_outcomes=Counter(f"{p}_live_outcomes", "Labelled decisions by model version "
                                  "and outcome (tp, fp, fn, tn; flagged = review or decline)",
                                  ["model_version", "outcome"], registry=reg),
            live_precision=Gauge(f"{p}_live_precision", "Precision of this worker's recent "
                                 "labelled decisions", ["model_version"], registry=reg),
            live_recall=Gauge(f"{p}_live_recall", "Recall of this worker's recent labelled "
                              "decisions", ["model_version"], registry=reg),
            live_average_precision=Gauge(f"{p}_live_average_precision", "Average precision of "
                                         "this worker's recent labelled scores",
                                         ["model_version"], registry=reg),
            live_labelled_scores=Histogram(f"{p}_live_labelled_score", "Scores of labelled "
                                           "decisions, by model version and label (is_fraud "
                                           "0 or 1); summed over workers for the group's "
                                           "average precision", ["model_version", "is_fraud"],
                                           buckets=SCORE_EDGES, registry=reg),
            live_frauds=Counter(f"{p}_live_frauds", "Labelled frauds by model version and the "
                                "score edge just below their score (``above``: a bucket edge "
                                "of fraudstream_live_labelled_score)",
                                ["model_version", "above"], registry=reg),
        )
        # Counters alerts take increase() of exist at 0 from the start: a series first seen
        # at 1 shows no increase, and its first event would never alert.
        for reason in refusal_reasons:
            metrics.model_refused.labels(reason)
        for reason in ("error", "timeout"):
            metrics.model_fallback.labels(reason)
        return metrics


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe`` of each of ``values`` (one unlabelled histogram), in one pass.

    prometheus_client's ``observe`` costs about 2 us a call (a bucket scan and a lock per
    value), paid per transaction. Here the buckets are counted with NumPy and each bucket's
    count is added once: the exposed samples are the same. Non-finite values are left out.
    Falls back to ``observe`` per value if prometheus_client's internals differ.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values.tolist():
            histogram.observe(value)
        return
    # observe() counts a value in the first bucket whose upper bound is >= it (the last
    # bound is +Inf): searchsorted's "left" side finds exactly that bucket.
    counts = np.bincount(np.searchsorted(np.asarray(bounds), values, side="left"),
                         minlength=len(bounds))
    total.inc(float(values.sum()))
    for index in np.flatnonzero(counts).tolist():
        buckets[index].inc(int(counts[index]))
