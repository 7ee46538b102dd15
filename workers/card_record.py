"""What the ``cards`` table holds per card: its feature state and its recent decisions.

Recent decisions make scoring idempotent: a record replayed after a crash (same partition and
offset) gets its original score again, and a second record with a known transaction id is a
duplicate and is dead-lettered instead of getting a second decision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from fraudstream.features import CardState

_JSON = json.JSONDecoder()

#: A transaction id is remembered (for duplicate detection, and for the label that will
#: confirm its decision) while it is among the card's last ``DEDUP_MIN_KEPT`` decisions or
#: younger, in the card's event time, than the window ``to_wire`` is given: at least
#: ``DEDUP_WINDOW_S``, and in the workers the label delay plus a day (``decisions_window_s``).
DEDUP_WINDOW_S = 2 * 86_400
DEDUP_MIN_KEPT = 32
#: Labels reported this long after their transaction's label delay still find its decision.
LABEL_SLACK_S = 86_400
#: Hard caps, so a very busy card's record stays far below the size limit of every output
#: (FRAUDSTREAM_MAX_MESSAGE_BYTES, 64 KiB): 256 decisions, and ids of at most 24 KB together
#: (ids may be 128 characters of up to 4 bytes each).
DEDUP_MAX_KEPT = 256
DEDUP_MAX_ID_BYTES = 24_000
#: The most bytes a valid transaction id takes (128 characters of up to 4 bytes).
MAX_ID_BYTES = 512
#: Up to this many decisions are searched one by one; beyond, through a dict.
SCAN_MAX = 32


def decisions_window_s(label_delay_days: int) -> int:
    """How long (event time) a card keeps its decisions: until their labels have come (the
    label delay, plus ``LABEL_SLACK_S``), so live performance matches each label to its
    decision however many transactions the card made meanwhile (up to ``DEDUP_MAX_KEPT``)."""
    return max(DEDUP_WINDOW_S, label_delay_days * 86_400 + LABEL_SLACK_S)


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
    """A card's feature state and recent decisions.

    Decisions stay in their wire form (lists in ``Decision`` field order) while the record is
    in use: a busy card carries dozens, and building objects for each on every transaction
    measured as the largest single cost of the scoring step.
    """

    state: CardState = field(default_factory=CardState)
    decisions: list[list] = field(default_factory=list)
    # Transaction id -> its decision, built once a lookup meets more than ``SCAN_MAX``
    # decisions: a linear scan of a busy card's few hundred per transaction measured ~25 us,
    # the dict ~0.1 us; an ordinary card's handful is scanned faster than a dict is built.
    _by_id: dict[str, list] | None = field(default=None, compare=False, repr=False)

    def _lookup(self, transaction_id: str) -> list | None:
        if self._by_id is None:
            if len(self.decisions) <= SCAN_MAX:
                return _scan(self.decisions, transaction_id)
            self._by_id = {d[0]: d for d in self.decisions}
        return self._by_id.get(transaction_id)

    def find(self, transaction_id: str) -> Decision | None:
        """The remembered decision of ``transaction_id``, if any."""
        found = self._lookup(transaction_id)
        return None if found is None else Decision(*found)

    def remember(self, decision: Decision) -> None:
        """Remember a (still undecided) transaction."""
        entry = list(decision)
        self.decisions.append(entry)
        if self._by_id is not None:
            self._by_id[decision.transaction_id] = entry

    def settle(self, transaction_id: str, score: float, decision: str, version: str) -> None:
        """Fill in the outcome of a remembered (still undecided) transaction."""
        d = self._lookup(transaction_id)
        if d is None:
            raise KeyError(transaction_id)
        d[4], d[5], d[6] = score, decision, version

    def to_wire(self, window_s: int = DEDUP_WINDOW_S) -> list[object]:
        """Compact JSON-able form; decisions older than ``window_s`` before the card's newest
        (and not among its last ``DEDUP_MIN_KEPT``) are dropped here, and beyond the caps."""
        decisions = self.decisions
        if len(decisions) <= DEDUP_MIN_KEPT:  # all kept
            kept = decisions
        else:
            # The card's newest transaction time; scanning the decisions for it was 3 % of a
            # draining worker's event loop (every decision's transaction went through state).
            newest = self.state.last_ts
            if newest is None:
                newest = max(d[1] for d in decisions)
            horizon = newest - window_s
            first_kept = len(decisions) - DEDUP_MIN_KEPT
            kept = [d for i, d in enumerate(decisions) if i >= first_kept or d[1] > horizon]
            kept = kept[-DEDUP_MAX_KEPT:]
        first = 0
        if len(kept) * MAX_ID_BYTES > DEDUP_MAX_ID_BYTES:  # else within budget whatever the ids
            budget, first = DEDUP_MAX_ID_BYTES, len(kept)
            while first > 0 and budget >= len(kept[first - 1][0]) * 4:  # UTF-8: <= 4 a char
                first -= 1
                budget -= len(kept[first][0]) * 4
        return [self.state.to_wire(), kept[first:]]

    @staticmethod
    def last_seen(wire: list | None) -> int | None:
        """The event time of the card's newest transaction, read off its wire form cheaply."""
        if not wire or not wire[0]:
            return None
        last_ts = wire[0][0]
        return int(last_ts) if last_ts is not None else None

    @staticmethod
    def decision_in(stored: bytes | None, transaction_id: str) -> Decision | None:
        """The decision of ``transaction_id`` read off a record's stored JSON, parsing only
        that decision (the label path asks this once per label; decoding a busy card's whole
        record, about 4 KB, cost more than the rest of the label's routing).

        A decision is stored as a list that starts with its id, written by orjson, so its
        newest one starts at the last ``[<id as orjson writes it>,`` (only decisions hold
        strings). A record with escapes in it may come from another encoder: it is decoded
        whole.
        """
        if not stored:
            return None
        at = stored.rfind(b"[" + orjson.dumps(transaction_id) + b",")
        if at < 0 and b"\\" not in stored:
            return None
        if at >= 0:
            try:
                found, _end = _JSON.raw_decode(stored[at:].decode())
            except ValueError:
                found = None
            if isinstance(found, list) and len(found) == len(Decision._fields) and (
                    found[0] == transaction_id):
                return Decision(*found)
        # Escapes (another encoder), or a match that is not a decision: decode it all.
        wire = orjson.loads(stored)
        found = _scan(wire[1], transaction_id) if wire else None
        return None if found is None else Decision(*found)

    @classmethod
    def from_wire(cls, wire: list | None) -> CardRecord:
        if not wire:
            return cls()
        state, decisions = wire
        return cls(CardState.from_wire(state), decisions)


def _scan(decisions: list[list], transaction_id: str) -> list | None:
    """The newest decision (wire form) of ``transaction_id`` in ``decisions``, if any."""
    for d in reversed(decisions):
        if d[0] == transaction_id:
            return d
    return None
