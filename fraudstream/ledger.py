"""A ledger of what was produced against what came out (scores and dead letters).

It proves the first invariant by counting, not by assumption: every produced transaction id is
scored or dead-lettered, and none is decided twice.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np
import orjson


@dataclass
class Ledger:
    """Produced ids on one side, score and dead-letter records on the other."""

    produced_ids: set[str] = field(default_factory=set)
    #: Records sent without a new transaction id (malformed ones, duplicates).
    produced_unparseable: int = 0
    score_counts: collections.Counter[str] = field(default_factory=collections.Counter)
    decisions: dict[str, str] = field(default_factory=dict)
    conflicting: set[str] = field(default_factory=set)
    decision_counts: collections.Counter[str] = field(default_factory=collections.Counter)
    dead_letters: int = 0
    dead_letter_ids: set[str] = field(default_factory=set)
    dead_letter_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def produced(self, value: bytes) -> None:
        """Note a record as sent; records without a readable id are counted apart."""
        try:
            body = orjson.loads(value)
            tid = body.get("transaction_id") if isinstance(body, dict) else None
        except orjson.JSONDecodeError:
            tid = None
        if isinstance(tid, str) and tid not in self.produced_ids:
            self.produced_ids.add(tid)
        else:
            self.produced_unparseable += 1

    def observe(self, topic_kind: str, value: bytes | None, timestamp_ms: int) -> None:
        """Record an output: ``topic_kind`` is "scores" or "dlq"."""
        body = orjson.loads(value or b"{}")
        if topic_kind == "scores":
            tid = body["transaction_id"]
            self.score_counts[tid] += 1
            previous = self.decisions.setdefault(tid, body["decision"])
            if previous != body["decision"]:
                self.conflicting.add(tid)
            if self.score_counts[tid] == 1:
                self.decision_counts[body["decision"]] += 1
                ingested = body.get("ingested_at_ms")
                if ingested:
                    self.latencies_ms.append(max(timestamp_ms - ingested, 0))
        else:
            self.dead_letters += 1
            self.dead_letter_errors[body.get("error", "unknown")] += 1
            try:
                import base64

                original = orjson.loads(base64.b64decode(body.get("payload_b64", "")))
                if isinstance(original, dict) and isinstance(original.get("transaction_id"),
                                                             str):
                    self.dead_letter_ids.add(original["transaction_id"])
            except (orjson.JSONDecodeError, ValueError):
                pass

    @property
    def scored(self) -> int:
        return len(self.score_counts)

    @property
    def produced_total(self) -> int:
        return len(self.produced_ids) + self.produced_unparseable

    @property
    def complete(self) -> bool:
        return self.scored + self.dead_letters >= self.produced_total

    def summary(self) -> dict[str, object]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        missing_ids = self.produced_ids - set(self.score_counts) - self.dead_letter_ids
        lost_count = max(len(missing_ids),
                         self.produced_total - self.scored - self.dead_letters)
        declined = self.decision_counts.get("decline", 0)
        return {
            "produced": self.produced_total,
            "scored": self.scored,
            "dead_lettered": self.dead_letters,
            "lost": lost_count,
            "duplicates": sum(c - 1 for c in self.score_counts.values() if c > 1),
            "conflicting_decisions": len(self.conflicting),
            "decisions": dict(self.decision_counts),
            "decline_rate": declined / self.scored if self.scored else 0.0,
            "dead_letter_errors": dict(self.dead_letter_errors),
            "latency_ms": {"p50": float(np.percentile(lat, 50)),
                           "p99": float(np.percentile(lat, 99)),
                           "max": float(lat.max())},
        }
