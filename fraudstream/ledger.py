"""A ledger of what was produced against what came out (scores and dead letters).

It proves the first two invariants by counting, not by assumption. Every produced record is
known by its Kafka position (partition, offset), and every score and dead letter names the
position of the record it answers. A produced position is accounted for when exactly one
output names it; none is a loss, more than one a duplicate, whatever the outputs say about
transaction ids. A transaction id decided at two positions is a duplicate decision too, and two
different decisions for one id are conflicting.

When the input topic is deleted and created again, offsets start over and the same (partition,
offset) names a record of each incarnation. ``new_incarnation`` makes later records positions
of their own (the offset is moved into a range per incarnation), and an output is matched to
the incarnation whose record at its position has the output's transaction id.

Latency is measured where a user meets it: from the transaction's Kafka timestamp to the moment
a read-committed reader received the score (``seen_now_ms``). A score's own Kafka timestamp is
set when the worker appends it, before its transaction commits and before any reader can see
it: measured with it, two workers at 1,000 tx/s looked 14 ms faster at p50 and 90 ms at p99
(2026-12-02, README "Benchmark").

The measuring process must not add its own stalls: a full collection of its cyclic garbage
collector stops its producer and its reader alike, and the pause is counted against the
workers (in the record's time before its batch, since the producer's timestamp is taken
before the pause, and in the reader's clock). ``quiet_collector`` keeps what the process holds
(simulated data, the records to send) out of the collector's reach while it measures.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson

from fraudstream.contracts import DeadLetter, Score

Position = tuple[int, int]

#: Offsets of incarnation k of the input topic are kept as offset + k * INCARNATION_SPAN.
INCARNATION_SPAN = 1 << 48


@contextlib.contextmanager
def quiet_collector() -> Iterator[None]:
    """Freeze the heap the measuring process holds now for the block (``gc.freeze``): its
    full collections then scan only what the measurement allocates, not the data it sends.

    Measured on 2026-12-03 in ``fraudstream bench`` (latency runs at 1,000 tx/s): without it
    the benchmark's own process paused 30-149 ms in generation-2 collections during the runs.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def seen_now_ms() -> int:
    """Wall-clock milliseconds: when a reader received an output (``Ledger.observe``)."""
    return int(time.time() * 1000)


@dataclass
class Ledger:
    """Produced records on one side, score and dead-letter records on the other."""

    #: (partition, offset) of each acknowledged transaction record -> its id (None: unreadable).
    produced_at: dict[Position, str | None] = field(default_factory=dict)
    #: Score records per position they name, and per transaction id they decide.
    score_positions: collections.Counter[Position] = field(
        default_factory=collections.Counter)
    score_counts: collections.Counter[str] = field(default_factory=collections.Counter)
    decisions: dict[str, str] = field(default_factory=dict)
    conflicting: set[str] = field(default_factory=set)
    decision_counts: collections.Counter[str] = field(default_factory=collections.Counter)
    dead_letter_positions: collections.Counter[Position] = field(
        default_factory=collections.Counter)
    dead_letter_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Outputs that name no position, or one that was never produced in this run.
    unmatched: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    #: (score record's Kafka timestamp, latency) of each first decision, for timelines: a
    #: timeline places a decision when it was made, its latency runs until it was seen.
    scored_at_ms: list[tuple[int, float]] = field(default_factory=list)
    #: Score records per model version, and how many a fallback answered (degraded).
    model_versions: collections.Counter[str] = field(default_factory=collections.Counter)
    degraded: int = 0
    #: Produced positions no output has named yet (kept as it goes: ``complete`` is O(1)).
    _unanswered: set[Position] = field(default_factory=set)
    #: Incarnations of the input topic so far (``new_incarnation``), the first being 0.
    incarnations: int = 1
    #: Count only outputs of records this run produced (topics shared with other producers,
    #: such as a deployment's own). An output read before its record's acknowledgement waits
    #: in ``_early`` until the acknowledgement comes; outputs of other records stay there.
    own_only: bool = False
    _early: dict[Position, list[tuple[str, bytes | None, int, int]]] = field(
        default_factory=dict)

    def new_incarnation(self) -> None:
        """The input topic was deleted and created again: later records are new positions."""
        self.incarnations += 1

    def position(self, partition: int, offset: int) -> Position:
        """The ledger's position of a record produced now at (partition, offset)."""
        return partition, offset + (self.incarnations - 1) * INCARNATION_SPAN

    def produced(self, value: bytes, partition: int, offset: int) -> None:
        """Note a record Kafka acknowledged at (partition, offset)."""
        position = self.position(partition, offset)
        self.produced_at[position] = _transaction_id(value)
        if position not in self.score_positions and position not in self.dead_letter_positions:
            self._unanswered.add(position)
        for early in self._early.pop(position, ()):
            self.observe(*early)

    def observe(self, topic_kind: str, value: bytes | None, timestamp_ms: int,
                seen_ms: int) -> None:
        """Record an output: ``topic_kind`` is "scores" or "dlq", ``timestamp_ms`` its Kafka
        timestamp (when it was decided), ``seen_ms`` when the reader received it
        (``seen_now_ms``; the latency is measured to it, module docstring)."""
        body = orjson.loads(value or b"{}")
        position = self._match(body)
        if position is None:
            self.unmatched += 1
            return
        if self.own_only and position not in self.produced_at:
            self._early.setdefault(position, []).append(
                (topic_kind, value, timestamp_ms, seen_ms))
            return
        self._unanswered.discard(position)
        if topic_kind == "scores":
            score: Score = body
            self.score_positions[position] += 1
            tid = score["transaction_id"]
            self.score_counts[tid] += 1
            previous = self.decisions.setdefault(tid, score["decision"])
            if previous != score["decision"]:
                self.conflicting.add(tid)
            if self.score_counts[tid] == 1:
                self.decision_counts[score["decision"]] += 1
                self.model_versions[str(score.get("model_version"))] += 1
                self.degraded += bool(score.get("degraded"))
                ingested = score.get("ingested_at_ms")
                if ingested:
                    latency = max(seen_ms - ingested, 0)
                    self.latencies_ms.append(latency)
                    self.scored_at_ms.append((timestamp_ms, latency))
        else:
            letter: DeadLetter = body
            self.dead_letter_positions[position] += 1
            if self.dead_letter_positions[position] == 1:
                self.dead_letter_errors[letter.get("error", "unknown")] += 1

    @property
    def scored(self) -> int:
        """Positions answered by at least one score."""
        return len(self.score_positions)

    @property
    def dead_letters(self) -> int:
        """Positions answered by at least one dead letter."""
        return len(self.dead_letter_positions)

    def lost(self) -> int:
        """Produced positions that no score and no dead letter names."""
        return len(self._unanswered)

    @property
    def scored_and_dead_lettered(self) -> int:
        """Positions answered both ways: two outcomes for one record."""
        return len(self.score_positions.keys() & self.dead_letter_positions.keys())

    @property
    def duplicate_scores(self) -> int:
        """Score records beyond the first of a transaction id (at one position or several)."""
        return sum(c - 1 for c in self.score_counts.values() if c > 1)

    @property
    def duplicate_dead_letters(self) -> int:
        return sum(c - 1 for c in self.dead_letter_positions.values() if c > 1)

    @property
    def duplicates(self) -> int:
        """Every output beyond one per produced record and one decision per transaction."""
        return (self.duplicate_scores + self.duplicate_dead_letters
                + self.scored_and_dead_lettered)

    @property
    def complete(self) -> bool:
        """Every produced record has an output (``lost()`` is the exact count)."""
        return not self._unanswered

    def summary(self) -> dict[str, object]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        declined = self.decision_counts.get("decline", 0)
        return {
            "produced": len(self.produced_at),
            "scored": self.scored,
            "dead_lettered": self.dead_letters,
            "lost": self.lost(),
            "duplicates": self.duplicates,
            "duplicate_scores": self.duplicate_scores,
            "duplicate_dead_letters": self.duplicate_dead_letters,
            "scored_and_dead_lettered": self.scored_and_dead_lettered,
            "unmatched_outputs": self.unmatched_outputs(),
            "conflicting_decisions": len(self.conflicting),
            "decisions": dict(self.decision_counts),
            "decline_rate": declined / self.scored if self.scored else 0.0,
            "dead_letter_errors": dict(self.dead_letter_errors),
            "latency_ms": {"p50": float(np.percentile(lat, 50)),
                           "p99": float(np.percentile(lat, 99)),
                           "max": float(lat.max())},
        }

    def _match(self, body: object) -> Position | None:
        """The produced position an output answers: of the incarnations with a record at the
        position it names, the one whose record has its transaction id, else the latest (the
        newest incarnation when none has one yet: an output can come before the ack)."""
        named = _position(body)
        if named is None or self.incarnations == 1:
            return named
        partition, offset = named
        tid = body.get("transaction_id") if isinstance(body, dict) else None
        candidates = [(partition, offset + k * INCARNATION_SPAN)
                      for k in reversed(range(self.incarnations))]
        present = [c for c in candidates if c in self.produced_at]
        for c in present:
            if tid is not None and self.produced_at[c] == tid:
                return c
        if not present or (tid is not None and candidates[0] not in self.produced_at):
            return candidates[0]
        return present[0]

    def unmatched_outputs(self) -> int:
        """Outputs naming no position or a position this run never produced."""
        foreign = sum(1 for p in self.score_positions | self.dead_letter_positions
                      if p not in self.produced_at)
        return self.unmatched + foreign + sum(len(held) for held in self._early.values())


def _transaction_id(value: bytes) -> str | None:
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    tid = body.get("transaction_id") if isinstance(body, dict) else None
    return tid if isinstance(tid, str) else None


def _position(body: object) -> Position | None:
    """The (partition, offset) an output names, or None when it names none."""
    if not isinstance(body, dict):
        return None
    partition, offset = body.get("partition"), body.get("offset")
    if (not isinstance(partition, int) or not isinstance(offset, int)
            or isinstance(partition, bool) or isinstance(offset, bool)
            or partition < 0 or offset < 0):
        return None
    return partition, offset
