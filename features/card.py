"""A card's spending history and the card features computed from it.

Card features use the card's own history up to and including the transaction: the 1-day window
is the exact last 24 hours; 7- and 30-day windows are calendar days (UTC) ending on the
transaction's day, which keeps the state small enough to replicate through a changelog.
``card_amount_to_avg_30d`` is the amount over the average of the card's earlier transactions in
the 30-day window (1 when it has none); ``card_amount_to_avg_7_30d`` the same over the days 7 to
29 before the transaction's day (the 30-day window without its last 7 days: the card's habit
before a fraud run of a few days, which inflates the 30-day average; measured in the README's
backtests); ``card_log_seconds_since_last`` is log(1 + seconds since
the card's newest earlier transaction), at most 30 days' worth.

The 1-day window is exact while a card has at most ``EXACT_CAP`` transactions in it, which
covers ordinary cards by far. Beyond that (a card-testing attack, a placeholder card id
upstream), the oldest transactions merge into buckets of at most ``BUCKET_SPAN_S`` of event
time, each holding (first time, last time, count, sum). A bucket counts as long as any of its
transactions may still be inside the window, so a busy card's 1-day count and sum are never
under-stated; at most one bucket's worth of transactions is over-stated. The state then stays
below ~6 KB whatever the card does (a list of every transaction reached 1 MB, the broker's
limit, at ~56,000 transactions a day), and a transaction in time order costs O(1): the window's
count and sum are running totals, recomputed only when something leaves the window.

History leaves the window relative to the newest event time the card has seen, not the current
transaction's, so a record that arrives late never evicts anything, and one from the future can
evict no more than the accepted clock skew (validation refuses the rest).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from fraudstream.features.windows import CARD_WINDOWS_DAYS, DAY_S, NO_PREVIOUS_S

#: Transactions of the last 24 hours kept one by one; older ones of a busier card are bucketed.
EXACT_CAP = 128
#: Longest event-time span of one bucket: at most ~49 buckets cover a day.
BUCKET_SPAN_S = 1800
#: ``card_amount_to_avg_7_30d`` leaves out the transaction's day and the 6 days before it.
BASELINE_SKIP_DAYS = 7


@dataclass
class CardState:
    """A card's recent history: last-24h transactions (exact, then bucketed) plus daily totals.

    ``recent`` holds (time, amount) in time order (oldest first: the wire form keeps it so);
    ``buckets`` holds [first, last, count, sum]
    lists in time order, all older than ``recent``; ``days`` maps a UTC day to (day, count,
    sum), the wire's entry as it is (building one list per day per card written measured at
    3 % of a draining worker's event loop).
    """

    recent: list[tuple[int, float]] = field(default_factory=list)
    days: dict[int, tuple[int, int, float]] = field(default_factory=dict)
    last_ts: int | None = None
    buckets: list[list] = field(default_factory=list)
    # Running totals of recent + buckets (derived, not compared; -1: to be counted). The wire
    # carries them so that reading a record costs no pass over it.
    _count: int = field(default=-1, compare=False, repr=False)
    _sum: float = field(default=0.0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self._count < 0:
            self._recount()

    def observe(self, ts: int, amount: float) -> list[float]:
        """Add a transaction and return the card features for it (in ``FEATURE_NAMES`` order)."""
        day = ts // DAY_S
        # Features relative to history *before* this transaction.
        prev_count, prev_sum = self._window(day, 30)
        newest = self.last_ts
        gap = NO_PREVIOUS_S if newest is None else min(max(ts - newest, 0), NO_PREVIOUS_S)
        ratio = amount / (prev_sum / prev_count) if prev_count and prev_sum > 0 else 1.0
        # The card's habit before the last week: a fraud run of a few days inflates the 30-day
        # average it is compared with, not this one.
        old_count, old_sum = self._window(day, 30, skip=BASELINE_SKIP_DAYS)
        baseline_ratio = amount / (old_sum / old_count) if old_count and old_sum > 0 else 1.0
        # Then the windows including it, as the Handbook computes them.
        if newest is None or ts >= newest:
            n1, s1 = self._add_newest(ts, amount)
        elif ts <= newest - DAY_S:
            # Already outside every later transaction's window: counts for itself only.
            n1, s1 = 1, amount
        else:
            n1, s1 = self._add_late(ts, amount)
        _day, count, total = self.days.get(day, (day, 0, 0.0))
        self.days[day] = (day, count + 1, total + amount)
        out = [float(n1), s1 / n1]
        for w in CARD_WINDOWS_DAYS:
            n, s = self._window(day, w)
            out += [float(n), s / n if n else 0.0]
        out += [ratio, baseline_ratio, math.log1p(gap)]
        self.last_ts = ts if newest is None else max(newest, ts)
        self._forget_days(self.last_ts // DAY_S)
        return out

    def _add_newest(self, ts: int, amount: float) -> tuple[int, float]:
        """The usual case, O(1) amortised: everything kept is inside the new window."""
        horizon = ts - DAY_S
        if ((self.buckets and self.buckets[0][1] <= horizon)
                or (self.recent and self.recent[0][0] <= horizon)):
            self._forget_before(ts)
        self.recent.append((ts, amount))
        self._count += 1
        self._sum += amount
        self._cap()
        return self._count, self._sum

    def _add_late(self, ts: int, amount: float) -> tuple[int, float]:
        """A transaction older than the newest seen: inserted in place, window scanned."""
        if self.buckets and (not self.recent or ts < self.recent[0][0]):
            i = max(bisect.bisect_right([b[0] for b in self.buckets], ts) - 1, 0)
            bucket = self.buckets[i]
            bucket[0], bucket[1] = min(bucket[0], ts), max(bucket[1], ts)
            bucket[2] += 1
            bucket[3] += amount
        else:
            bisect.insort(self.recent, (ts, amount), key=_time)
            self._cap()
        self._count += 1
        self._sum += amount
        start = ts - DAY_S
        n, s = 0, 0.0
        for first, last, count, total in self.buckets:
            if last > start and first <= ts:
                n += count
                s += total
        for t, a in self.recent:
            if start < t <= ts:
                n += 1
                s += a
        return n, s

    def _cap(self) -> None:
        """Merge the oldest exact transactions beyond ``EXACT_CAP`` into buckets."""
        excess = len(self.recent) - EXACT_CAP
        if excess <= 0:
            return
        for t, a in self.recent[:excess]:
            last = self.buckets[-1] if self.buckets else None
            if last is not None and t - last[0] < BUCKET_SPAN_S:
                last[1] = max(last[1], t)
                last[2] += 1
                last[3] += a
            else:
                self.buckets.append([t, t, 1, a])
        del self.recent[:excess]

    def _forget_before(self, newest: int) -> None:
        """Drop what the 24-hour window of a transaction at or after ``newest`` cannot count."""
        horizon = newest - DAY_S
        dropped = 0
        while self.buckets and self.buckets[0][1] <= horizon:
            self.buckets.pop(0)
            dropped += 1
        if not self.buckets:
            gone = bisect.bisect_right(self.recent, horizon, key=_time)
            if gone:
                del self.recent[:gone]
                dropped += 1
        if dropped:
            self._recount()

    def _forget_days(self, newest_day: int) -> None:
        """Drop the days no 30-day window ending on or after ``newest_day`` reaches."""
        horizon = newest_day - 30
        if self.days and min(self.days) <= horizon:  # once a day per card, not per transaction
            for old in [d for d in self.days if d <= horizon]:
                del self.days[old]

    def _recount(self) -> None:
        # Summed in time order, as a list of every transaction would be: exact for normal cards.
        total = 0.0
        for bucket in self.buckets:
            total += bucket[3]
        for _t, a in self.recent:
            total += a
        self._count = sum(b[2] for b in self.buckets) + len(self.recent)
        self._sum = total

    def _window(self, day: int, width: int, skip: int = 0) -> tuple[int, float]:
        """Count and sum of the days ``day - width < d <= day - skip``."""
        count, total = 0, 0.0
        for d, n, s in self.days.values():
            if day - width < d <= day - skip:
                count += n
                total += s
        return count, total

    def to_wire(self) -> list[object]:
        """A compact JSON-able form for the changelog."""
        # orjson writes a tuple as a list: the entries go out as they are (one new list per
        # entry per card written measured at 2 % of a worker).
        return [self.last_ts, list(self.recent), list(self.days.values()), self.buckets,
                self._count, self._sum]

    @classmethod
    def from_wire(cls, wire: list | None) -> CardState:
        """The state ``to_wire`` wrote (also the older form without buckets)."""
        if not wire:
            return cls()
        last_ts, recent, days, *rest = wire
        entries = [(int(t), float(a)) for t, a in recent]
        days_kept = {int(d): (int(d), int(n), float(s)) for d, n, s in days}
        if not rest:  # the older form: in arrival order, and possibly longer than the cap
            entries.sort(key=_time)
            state = cls(entries, days_kept, last_ts)
            state._cap()
            return state
        buckets = [[int(f), int(la), int(n), float(s)] for f, la, n, s in rest[0]]
        count, total = (int(rest[1]), float(rest[2])) if len(rest) == 3 else (-1, 0.0)
        return cls(entries, days_kept, last_ts, buckets, count, total)


def _time(entry: tuple[int, float]) -> int:
    return entry[0]
