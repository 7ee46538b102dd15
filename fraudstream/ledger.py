"""A ledger of what was produced against what came out (scores and dead letters).

It proves the first invariant by counting, not by assumption. Every produced record is known by
its Kafka position; it is accounted for when a dead letter names that position, or when it is
the first record of its transaction id and that id was scored. Anything else is lost.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np
import orjson

Position = tuple[int, int]


@dataclass
class Ledger:
    """Produced records on one side, score and dead-letter records on the other."""

    #: (partition, offset) of each acknowledged transaction record -> its id (None: unreadable).
    produced_at: dict[Position, str | None] = field(default_factory=dict)
    score_counts: collections.Counter[str] = field(default_factory=collections.Counter)
    decisions: dict[str, str] = field(default_factory=dict)
    conflicting: set[str] = field(default_factory=set)
    decision_counts: collections.Counter[str] = field(default_factory=collections.Counter)
    dead_letter_positions: set[Position] = field(default_factory=set)
    dead_letter_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies_ms: list[float] = field(default_factory=list)
    #: (score record's Kafka timestamp, latency) of each first decision, for timelines.
    scored_at_ms: list[tuple[int, float]] = field(default_factory=list)
    dead_letter_repeats: int = 0
    #: Score records per model version, and how many a fallback answered (degraded).
    model_versions: collections.Counter[str] = field(default_factory=collections.Counter)
    degraded: int = 0

    def produced(self, value: bytes, partition: int, offset: int) -> None:
        """Note a record Kafka acknowledged at (partition, offset)."""
        try:
            body = orjson.loads(value)
            tid = body.get("transaction_id") if isinstance(body, dict) else None
        except orjson.JSONDecodeError:
            tid = None
        self.produced_at[(partition, offset)] = tid if isinstance(tid, str) else None

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
                self.model_versions[str(body.get("model_version"))] += 1
                self.degraded += bool(body.get("degraded"))
                ingested = body.get("ingested_at_ms")
                if ingested:
                    latency = max(timestamp_ms - ingested, 0)
                    self.latencies_ms.append(latency)
                    self.scored_at_ms.append((timestamp_ms, latency))
        else:
            position = (int(body["partition"]), int(body["offset"]))
            if position in self.dead_letter_positions:
                self.dead_letter_repeats += 1
            else:
                self.dead_letter_positions.add(position)
                self.dead_letter_errors[body.get("error", "unknown")] += 1

    @property
    def scored(self) -> int:
        return len(self.score_counts)

    @property
    def dead_letters(self) -> int:
        return len(self.dead_letter_positions)

    def lost(self) -> int:
        """Produced records neither dead-lettered at their position nor scored by their id."""
        used: set[str] = set()
        lost = 0
        for position in sorted(self.produced_at):
            tid = self.produced_at[position]
            if position in self.dead_letter_positions:
                continue
            if tid is not None and tid in self.score_counts and tid not in used:
                used.add(tid)
                continue
            lost += 1
        return lost

    @property
    def duplicates(self) -> int:
        """Extra outputs: second score records of an id, second dead letters of a position."""
        return (sum(c - 1 for c in self.score_counts.values() if c > 1)
                + self.dead_letter_repeats)

    @property
    def complete(self) -> bool:
        """Every produced record has an output (a cheap check; ``lost()`` is the exact one)."""
        return self.scored + self.dead_letters >= len(self.produced_at)

    def summary(self) -> dict[str, object]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        declined = self.decision_counts.get("decline", 0)
        return {
            "produced": len(self.produced_at),
            "scored": self.scored,
            "dead_lettered": self.dead_letters,
            "lost": self.lost(),
            "duplicates": self.duplicates,
            "duplicate_scores": self.duplicates - self.dead_letter_repeats,
            "duplicate_dead_letters": self.dead_letter_repeats,
            "conflicting_decisions": len(self.conflicting),
            "decisions": dict(self.decision_counts),
            "decline_rate": declined / self.scored if self.scored else 0.0,
            "dead_letter_errors": dict(self.dead_letter_errors),
            "latency_ms": {"p50": float(np.percentile(lat, 50)),
                           "p99": float(np.percentile(lat, 99)),
                           "max": float(lat.max())},
        }
