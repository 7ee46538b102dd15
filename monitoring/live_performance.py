"""Live precision, recall and average precision of recent decisions, once their labels arrive.

Where it runs: in each scoring worker, on the labels it consumes. Labels are keyed by card id,
like transactions, and the ``labels`` topic has as many partitions as ``transactions``, so
Faust's co-partitioned assignment gives a worker the labels of exactly the cards it scores. The
decision a label confirms is looked up, by transaction id, in that card's table entry, which
keeps the card's decisions until their labels are due (its last 32 at least, and all within
the label delay plus a day of event time, up to 256; see ``workers/card_record.py``). The
table is the group's, not a worker's: it moves with its partition (changelog, restored by the
next owner), so a label is matched whatever worker scored its transaction. A label for a
decision older than that, or for one of a card with more decisions in that window than the
cap, counts as ``unmatched`` and is left out.

Each worker exports the outcome counters (summed across workers by recording rules, which
precision and recall alerts use), its labelled scores by bucket and its frauds by the score
edge below them (summed across workers by the rule of the group's average precision), and,
per model version, gauges over its own last ``window`` labelled decisions (exact average
precision, this worker's only). A decision is *flagged* when it is ``review`` or ``decline``.

What a model should do is exported beside it (``publish_validation``): the precision and recall
of its flagged decisions on the validation fold that chose nothing (``model_registry.training``),
so that the alerts hold each model to its own figures instead of one fixed floor.
"""

from __future__ import annotations

import bisect
import collections
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import orjson
from prometheus_client.utils import floatToGoString
from sklearn.metrics import average_precision_score

from fraudstream.monitoring.metrics import SCORE_EDGES, WorkerMetrics

logger = logging.getLogger(__name__)

FLAGGED = frozenset({"review", "decline"})
OUTCOMES = ("tp", "fp", "fn", "tn")

#: Measure exported by ``publish_validation`` -> the manifest metric it comes from.
VALIDATION_MEASURES = {"flagged_precision": "val_flagged_precision",
                       "flagged_recall": "val_flagged_recall"}

#: The score edges as Prometheus writes them in ``le`` (``live_frauds``' ``above`` must match).
EDGE_LABELS = tuple(floatToGoString(edge) for edge in SCORE_EDGES)


def edge_below(score: float) -> str:
    """The ``le`` of the histogram bucket just below ``score``'s (the first edge for a score at
    or under it): the group's average precision counts each fraud at the precision of every
    labelled decision scored above that edge (``fraudstream:live_average_precision:
    increase30m``, ``monitoring/rules/fraudstream.yml``)."""
    at = bisect.bisect_left(SCORE_EDGES, score)
    return EDGE_LABELS[max(at - 1, 0)]


#: (score, decision, model_version) of a remembered decision, or None.
DecisionLookup = Callable[[bytes, str], "tuple[float, str, str] | None"]


class LivePerformance:
    """Matches labels to remembered decisions and publishes precision, recall and AP."""

    def __init__(self, metrics: WorkerMetrics, lookup: DecisionLookup, *, window: int = 5000,
                 publish_interval_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.lookup = lookup
        self.window = window
        self.interval = publish_interval_s
        self.clock = clock
        #: Per model version: recent (score, flagged, is_fraud).
        self.recent: dict[str, collections.deque[tuple[float, bool, bool]]] = {}
        self._published_at = float("-inf")

    def observe_label(self, key: bytes | None, value: bytes | None) -> str:
        """Account one raw label record; returns matched, unmatched or malformed."""
        try:
            body: Any = orjson.loads(value or b"")
            tx_id, is_fraud = body["transaction_id"], int(body["is_fraud"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return self._count("malformed")
        if not key or not isinstance(tx_id, str) or is_fraud not in (0, 1):
            return self._count("malformed")
        try:
            found = self.lookup(key, tx_id)
        except Exception:  # a table entry it cannot read: never stop the labels agent
            logger.exception("decision lookup failed transaction_id=%s", tx_id)
            found = None
        if found is None:
            return self._count("unmatched")
        score, decision, version = found
        self.record(version, score, decision in FLAGGED, bool(is_fraud))
        return self._count("matched")

    def record(self, version: str, score: float, flagged: bool, is_fraud: bool) -> None:
        """Account one labelled decision."""
        recent = self.recent.get(version)
        if recent is None:
            recent = self.recent[version] = collections.deque(maxlen=self.window)
            # Every series exists from the start, so rules can divide by them and increase()
            # counts the first event.
            for outcome in OUTCOMES:
                self.metrics.live_outcomes.labels(version, outcome)
            for label in ("0", "1"):
                self.metrics.live_labelled_scores.labels(version, label)
            for edge in EDGE_LABELS:
                self.metrics.live_frauds.labels(version, edge)
        recent.append((score, flagged, is_fraud))
        outcome = ("t" if flagged == is_fraud else "f") + ("p" if flagged else "n")
        self.metrics.live_outcomes.labels(version, outcome).inc()
        self.metrics.live_labelled_scores.labels(version, "1" if is_fraud else "0").observe(score)
        if is_fraud:
            self.metrics.live_frauds.labels(version, edge_below(score)).inc()

    def maybe_publish(self) -> None:
        """Recompute the gauges if the last time was ``publish_interval_s`` ago or more."""
        now = self.clock()
        if now - self._published_at >= self.interval:
            self._published_at = now
            self.publish()

    def publish(self) -> None:
        """Set precision, recall and average precision gauges for every model version seen."""
        for version, recent in self.recent.items():
            if not recent:
                continue
            arr = np.asarray(recent, dtype=np.float64)
            scores, flagged, fraud = arr[:, 0], arr[:, 1] > 0, arr[:, 2] > 0
            tp = int((flagged & fraud).sum())
            if flagged.any():
                self.metrics.live_precision.labels(version).set(tp / int(flagged.sum()))
            if fraud.any():
                self.metrics.live_recall.labels(version).set(tp / int(fraud.sum()))
                self.metrics.live_average_precision.labels(version).set(
                    float(average_precision_score(fraud, scores)))

    def _count(self, outcome: str) -> str:
        self.metrics.labels_matched.labels(outcome).inc()
        return outcome


def publish_validation(metrics: WorkerMetrics, version: str,
                       manifest_metrics: Mapping[str, Any]) -> None:
    """Export what validation measured for ``version`` (models trained before these figures
    existed export nothing, and the alerts hold them to a fixed floor).

    Kept for every version the worker has served: labels confirm decisions up to the label
    delay after them, so an earlier version's figures are still compared with after a swap.
    """
    for measure, key in VALIDATION_MEASURES.items():
        value = manifest_metrics.get(key)
        if isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0:
            metrics.model_validation.labels(version, measure).set(float(value))
