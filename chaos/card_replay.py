"""Card state against a replay: what the card table holds after a run, compared with what
replaying the run's scored transactions, in offset order, computes from nothing.

A worker that keeps writing for partitions it lost (a zombie) would leave its own, older
version of a card in the changelog, or a card would miss a transaction or count one twice;
the scores alone do not show that. The replay uses the workers' own validation and feature
code, so any difference is the table's, not a second definition's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import orjson

from fraudstream.ledger import Position
from fraudstream.settings import Settings
from fraudstream.streaming import TopicReader
from fraudstream.workers.card_record import CardRecord, Decision, decisions_window_s
from fraudstream.workers.topics import card_changelog
from fraudstream.workers.validation import Transaction, validate

#: Cards named in a mismatch report (the count is always complete).
EXAMPLES = 5


@dataclass
class CardCheck:
    """The outcome of comparing the card table with a replay."""

    #: Cards the run's scored transactions touched, and how many of them the table holds
    #: exactly as the replay computes them.
    cards: int = 0
    equal: int = 0
    #: Cards whose latest changelog record is a tombstone (expired as idle in event time).
    expired: int = 0
    #: Cards that differ or are missing, with a few described.
    mismatched: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.mismatched == 0 and self.cards > 0


def replay(values: Mapping[Position, bytes], scored: Mapping[Position, object],
           decisions: Mapping[str, str], settings: Settings) -> dict[str, CardRecord]:
    """Each card's record after its scored transactions, applied in (partition, offset) order
    (one card lives on one partition), with the decision the scores topic carries."""
    cards: dict[str, CardRecord] = {}
    now = float(2**31)  # validation's clock: only "too far in the future" depends on it
    for position in sorted(p for p in scored if p in values):
        tx = validate(values[position], now, settings.max_message_bytes, now)
        if not isinstance(tx, Transaction):
            continue
        card = cards.setdefault(tx.card_id, CardRecord())
        card.state.observe(tx.ts, tx.amount)
        card.remember(Decision(tx.transaction_id, tx.ts, position[0], position[1], -1.0,
                               decisions.get(tx.transaction_id, ""), ""))
    return cards


async def read_cards(settings: Settings, timeout_s: float) -> dict[str, list | None]:
    """The latest committed value of every card in the card table's changelog (None: a
    tombstone)."""
    latest: dict[str, list | None] = {}

    def keep(_topic: str, key: bytes | None, value: bytes | None, _ts: int) -> None:
        if key is not None:
            latest[key.decode()] = None if value is None else orjson.loads(value)

    async with TopicReader(settings, [card_changelog(settings)]) as reader:
        if not await reader.read_until_settled(keep, settle_s=1.0, timeout_s=timeout_s):
            raise TimeoutError(f"the card table's changelog was not read to its end within "
                               f"{timeout_s:.0f} s")
    return latest


def compare(expected: Mapping[str, CardRecord], table: Mapping[str, list | None],
            settings: Settings) -> CardCheck:
    """Each replayed card's feature state and decided (id, partition, offset, decision) against
    the table's latest value; the replay keeps decisions for the window the workers keep them
    (``decisions_window_s`` of the label delay)."""
    window_s = decisions_window_s(settings.label_delay_days)
    check = CardCheck(cards=len(expected))
    for card_id, want in sorted(expected.items()):
        if card_id in table and table[card_id] is None:
            check.expired += 1
            continue
        problem = _difference(want, table.get(card_id), window_s)
        if problem is None:
            check.equal += 1
            continue
        check.mismatched += 1
        if len(check.examples) < EXAMPLES:
            check.examples.append(f"{card_id}: {problem}")
    return check


def _difference(want: CardRecord, wire: list | None, window_s: int) -> str | None:
    if wire is None:
        return "not in the card table"
    have = CardRecord.from_wire(wire)
    if have.state.to_wire() != want.state.to_wire():
        return (f"feature state {orjson.dumps(have.state.to_wire())[:200]!r}, replay "
                f"{orjson.dumps(want.state.to_wire())[:200]!r}")
    kept = cast(list[list], want.to_wire(window_s)[1])  # pruned as the workers prune theirs
    ours = [(d[0], d[2], d[3], d[5]) for d in kept]
    theirs = [(d[0], d[2], d[3], d[5]) for d in have.decisions]
    if ours != theirs:
        return f"decisions {theirs[-3:]}, replay {ours[-3:]} (last three)"
    return None


def check_cards(settings: Settings, values: Mapping[Position, bytes],
                scored: Mapping[Position, object], decisions: Mapping[str, str],
                timeout_s: float = 120.0) -> CardCheck:
    """Replay the run's scored transactions and compare the card table with the result."""
    table = asyncio.run(read_cards(settings, timeout_s))
    return compare(replay(values, scored, decisions, settings), table, settings)
