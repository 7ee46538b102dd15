"""What the ``cards`` table holds per card: its feature state and its recent decisions.

Recent decisions make scoring idempotent: a record replayed after a crash (same partition and
offset) gets its original score again, and a second record with a known transaction id is a
duplicate and is dead-lettered instead of getting a second decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from features import CardState

#: A transaction id is remembered for duplicate detection while it is among the card's last
#: ``DEDUP_MIN_KEPT`` decisions or younger than ``DEDUP_WINDOW_S`` in the card's event time.
DEDUP_WINDOW_S = 2 * 86_400
DEDUP_MIN_KEPT = 32
#: Hard cap, so a very busy card's record stays far below Kafka's message size limit.
DEDUP_MAX_KEPT = 256


class Decision(NamedTuple):
    transaction_id: str
    ts: int
    partition: int
    offset: int
    score: float
    decision: str
    model_version: str


@dataclass
class CardRecord:
    state: CardState = field(default_factory=CardState)
    decisions: list[Decision] = field(default_factory=list)

    def find(self, transaction_id: str) -> Decision | None:
        for d in self.decisions:
            if d.transaction_id == transaction_id:
                return d
        return None

    def remember(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def settle(self, transaction_id: str, score: float, decision: str, version: str) -> None:
        """Fill in the outcome of a remembered (still undecided) transaction."""
        for i in range(len(self.decisions) - 1, -1, -1):
            if self.decisions[i].transaction_id == transaction_id:
                self.decisions[i] = self.decisions[i]._replace(
                    score=score, decision=decision, model_version=version)
                return
        raise KeyError(transaction_id)

    def to_wire(self) -> list[object]:
        """Compact JSON-able form; decisions older than the dedup window are dropped here."""
        horizon = max((d.ts for d in self.decisions), default=0) - DEDUP_WINDOW_S
        first_kept = len(self.decisions) - DEDUP_MIN_KEPT
        kept = [list(d) for i, d in enumerate(self.decisions) if i >= first_kept or d.ts > horizon]
        return [self.state.to_wire(), kept[-DEDUP_MAX_KEPT:]]

    @classmethod
    def from_wire(cls, wire: list | None) -> CardRecord:
        if not wire:
            return cls()
        state, decisions = wire
        return cls(CardState.from_wire(state), [Decision(*d) for d in decisions])
