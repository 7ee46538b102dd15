"""A card's spending history and the card features computed from it.

Card features use the card's own history up to and including the transaction: the 1-day window
is the exact last 24 hours; 7- and 30-day windows are calendar days (UTC) ending on the
transaction's day, which keeps the state small enough to replicate through a changelog.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from features.windows import CARD_WINDOWS_DAYS, DAY_S, NO_PREVIOUS_S


@dataclass
class CardState:
    """A card's recent history: exact last-24h transactions plus daily (count, sum) buckets."""

    recent: list[tuple[int, float]] = field(default_factory=list)
    days: dict[int, tuple[int, float]] = field(default_factory=dict)
    last_ts: int | None = None

    def observe(self, ts: int, amount: float) -> list[float]:
        """Add a transaction and return the card features for it (in ``FEATURE_NAMES`` order)."""
        day = ts // DAY_S
        # Features relative to history *before* this transaction.
        prev_count, prev_sum = self._window(day, 30)
        gap = NO_PREVIOUS_S if self.last_ts is None else min(max(ts - self.last_ts, 0),
                                                               NO_PREVIOUS_S)
        ratio = amount / (prev_sum / prev_count) if prev_count and prev_sum > 0 else 1.0
        # Then the windows including it, as the Handbook computes them.
        self.recent = [(t, a) for t, a in self.recent if t > ts - DAY_S]
        self.recent.append((ts, amount))
        count, total = self.days.get(day, (0, 0.0))
        self.days[day] = (count + 1, total + amount)
        for old in [d for d in self.days if d <= day - 30]:
            del self.days[old]
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        n1 = sum(1 for t, _ in self.recent if t <= ts)
        s1 = sum(a for t, a in self.recent if t <= ts)
        out = [float(n1), s1 / n1]
        for w in CARD_WINDOWS_DAYS:
            n, s = self._window(day, w)
            out += [float(n), s / n if n else 0.0]
        out += [ratio, math.log1p(gap)]
        return out

    def _window(self, day: int, width: int) -> tuple[int, float]:
        count, total = 0, 0.0
        for d, (n, s) in self.days.items():
            if day - width < d <= day:
                count += n
                total += s
        return count, total

    def to_wire(self) -> list[object]:
        """A compact JSON-able form for the changelog."""
        return [self.last_ts, [list(r) for r in self.recent],
                [[d, n, s] for d, (n, s) in self.days.items()]]

    @classmethod
    def from_wire(cls, wire: list | None) -> CardState:
        if not wire:
            return cls()
        last_ts, recent, days = wire
        return cls([(int(t), float(a)) for t, a in recent],
                   {int(d): (int(n), float(s)) for d, n, s in days}, last_ts)
