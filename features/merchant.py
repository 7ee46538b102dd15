"""A merchant's labelled history and the merchant (terminal risk) features computed from it.

**Which labels a transaction may use.** A transaction at time ``t`` (unix seconds) uses the label
of a transaction at time ``τ`` only if ``τ <= t - delay`` (``delay`` in seconds): a chargeback
takes that long to arrive. With ``hi = t - delay`` and ``D = 86_400``:

- ``merchant_nb_tx_{w}d``: labelled transactions of the merchant with ``hi - w·D < τ <= hi``;
  ``merchant_risk_{w}d``: the share of frauds among them (0 when there is none); w = 1, 7, 30.
- ``merchant_fraud_days_30d``: how many of the 30 day-long slots ``(hi - (k+1)·D, hi - k·D]``,
  k = 0..29, hold at least one known fraud (days counted back from ``t - delay``, not calendar
  days).
- ``merchant_days_since_fraud``: ``(hi - τ) / D`` for the newest known fraud ``τ`` in
  ``(hi - 30·D, hi]``, or 31 when there is none.

Offline (``features.offline``) and online (the workers' merchants table) run this same code;
a label's arrival time never matters, only its transaction's time, so a label that arrives
early is stored but not read before it is ``delay`` old.

**Bounded state.** Labels are kept per second (count, frauds) up to ``LEVEL_CAP`` distinct
seconds; beyond that the oldest seconds are merged into minute buckets, and beyond
``LEVEL_CAP`` minute buckets the oldest minutes into hour buckets. Each level's lower boundary
is the smallest boundary (of the next level's width) that leaves at most ``LEVEL_CAP`` entries
at or after it, so the state depends only on the set of labels received, not on their order.
A bucket ``[s, e]`` is counted in a window only when it lies inside it whole
(``s > hi - w·D`` and ``e <= hi``): it never leaks a label younger than the delay. When the
state holds no label younger than the delay (offline always; online when labels arrive on time
or late) the newest minute is always exact and every bucket ends before ``hi``, so only the far
edge of a window is approximate, and only for merchants with more than ``LEVEL_CAP`` labelled
seconds within the window. For the fraud-day features a bucket's frauds are dated at its last
second. Entries a whole ``MERCHANT_KEEP_DAYS`` older than the newest label (event time) are
dropped.

Reads are ``O(log n)``: sorted times with cumulative counts, searched by bisection.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from typing import Any

from fraudstream.features.windows import DAY_S, MERCHANT_KEEP_DAYS, MERCHANT_WINDOWS_DAYS

#: Widths of the levels a merchant's labels are kept in: exact seconds, minutes, hours.
LEVEL_WIDTHS_S = (1, 60, 3600)
#: Entries kept in each level but the last (which ``MERCHANT_KEEP_DAYS`` bounds: 961 hours).
LEVEL_CAP = 1024
#: Version tag of the wire form; the list form of earlier releases (daily buckets) is read too.
WIRE_VERSION = 2


class MerchantStateFormatError(ValueError):
    """A stored merchant state is in no known wire form."""


class _Tier:
    """Sorted points (a second, or a bucket's last second) with cumulative counts and frauds.

    ``cum_n[i]`` is the count of all entries before index ``i`` (plus a base that dropping the
    oldest entries leaves behind), so a range sum is a difference of two cumulative values.
    """

    __slots__ = ("cum_f", "cum_n", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.cum_n: list[int] = [0]
        self.cum_f: list[int] = [0]

    def __len__(self) -> int:
        return len(self.times)

    @classmethod
    def from_flat(cls, flat: Any, width: int) -> _Tier:
        """A tier from its wire form: delta-coded (bucket index, count, frauds) triples,
        flattened (``to_flat``). Whole-list operations, no loop in Python per entry but the
        one mapping indexes to points: decoding is what every worker does for each merchant
        state the label path changes."""
        if not isinstance(flat, list) or len(flat) % 3:
            raise MerchantStateFormatError(f"merchant state entries {str(flat)[:80]!r} are not "
                                           "a flat list of triples")
        if not set(map(type, flat)) <= {int}:
            raise MerchantStateFormatError(f"merchant state entries {str(flat)[:80]!r} are not "
                                           "all integers")
        deltas = flat[0::3]
        if min(deltas[1:], default=1) <= 0:
            raise MerchantStateFormatError("merchant state entries are not in time order")
        tier = cls()
        indexes = list(itertools.accumulate(deltas))
        tier.times = indexes if width == 1 else [i * width + width - 1 for i in indexes]
        tier.cum_n = [0, *itertools.accumulate(flat[1::3])]
        tier.cum_f = [0, *itertools.accumulate(flat[2::3])]
        return tier

    def to_flat(self, width: int) -> list[int]:
        """The wire form ``from_flat`` reads."""
        times, cn, cf = self.times, self.cum_n, self.cum_f
        indexes = times if width == 1 else [t // width for t in times]
        flat = [0] * (3 * len(times))
        if indexes:
            flat[0::3] = [indexes[0], *map(operator.sub, indexes[1:], indexes[:-1])]
            flat[1::3] = list(map(operator.sub, cn[1:], cn[:-1]))
            flat[2::3] = list(map(operator.sub, cf[1:], cf[:-1]))
        return flat

    def copy(self) -> _Tier:
        tier = _Tier()
        tier.times, tier.cum_n, tier.cum_f = self.times[:], self.cum_n[:], self.cum_f[:]
        return tier

    def add(self, at: int, n: int, f: int) -> None:
        """Count ``n`` labels, ``f`` of them frauds, at point ``at``."""
        times = self.times
        if not times or at > times[-1]:
            times.append(at)
            self.cum_n.append(self.cum_n[-1] + n)
            self.cum_f.append(self.cum_f[-1] + f)
            return
        if at == times[-1]:
            self.cum_n[-1] += n
            self.cum_f[-1] += f
            return
        i = bisect.bisect_left(times, at)
        if i == len(times) or times[i] != at:
            # Out of order (rare online, never offline): open a point with nothing in it yet.
            times.insert(i, at)
            self.cum_n.insert(i + 1, self.cum_n[i])
            self.cum_f.insert(i + 1, self.cum_f[i])
        for j in range(i + 1, len(self.cum_n)):
            self.cum_n[j] += n
            self.cum_f[j] += f

    def entries(self) -> list[tuple[int, int, int]]:
        """(point, count, frauds) in time order."""
        cn, cf = self.cum_n, self.cum_f
        return [(t, cn[i + 1] - cn[i], cf[i + 1] - cf[i]) for i, t in enumerate(self.times)]

    def drop_through(self, at: int) -> None:
        """Forget every entry whose point is ``<= at``."""
        k = bisect.bisect_right(self.times, at)
        if k:
            del self.times[:k]
            del self.cum_n[:k]
            del self.cum_f[:k]

    def take_before(self, at: int) -> list[tuple[int, int, int]]:
        """Remove and return the entries whose point is ``< at``."""
        k = bisect.bisect_left(self.times, at)
        cn, cf = self.cum_n, self.cum_f
        taken = [(self.times[i], cn[i + 1] - cn[i], cf[i + 1] - cf[i]) for i in range(k)]
        self.drop_through(at - 1)
        return taken

    def counts(self, lo: int, hi: int) -> tuple[int, int]:
        """(count, frauds) of the entries with ``lo < point <= hi``."""
        i = bisect.bisect_right(self.times, lo)
        j = bisect.bisect_right(self.times, hi)
        return self.cum_n[j] - self.cum_n[i], self.cum_f[j] - self.cum_f[i]

    def fraud_points(self, lo: int, hi: int, slots: set[int], origin: int) -> int | None:
        """Add to ``slots`` the day slots (counted back from ``origin``) of frauds with
        ``lo < point <= hi``; return the newest such point. One bisection per slot found."""
        i0 = bisect.bisect_right(self.times, lo)
        cf = self.cum_f
        newest: int | None = None
        upper = hi
        while True:
            j = bisect.bisect_right(self.times, upper)
            if j <= i0 or cf[j] == cf[i0]:
                return newest
            # The first cumulative index reaching cf[j] follows the newest fraud at or before
            # ``upper``.
            m = bisect.bisect_left(cf, cf[j], i0 + 1, j + 1)
            at = self.times[m - 1]
            if newest is None:  # the walk goes back in time: the first fraud is the newest
                newest = at
            slot = (origin - at) // DAY_S
            slots.add(slot)
            upper = origin - (slot + 1) * DAY_S


class MerchantState:
    """A merchant's labelled history: exact seconds, then minute and hour buckets when busy."""

    __slots__ = ("levels", "lower")

    def __init__(self) -> None:
        #: One tier per width in ``LEVEL_WIDTHS_S``; a bucket is stored at its last second.
        self.levels = tuple(_Tier() for _ in LEVEL_WIDTHS_S)
        #: ``lower[k]``: labels before it live in a coarser level than ``k``.
        self.lower = [0] * (len(LEVEL_WIDTHS_S) - 1)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MerchantState) and self.to_wire() == other.to_wire()

    def __repr__(self) -> str:
        sizes = ", ".join(str(len(tier)) for tier in self.levels)
        return f"MerchantState(entries=[{sizes}], lower={self.lower})"

    def observe_label(self, ts: int, is_fraud: bool,
                      keep_days: int = MERCHANT_KEEP_DAYS) -> None:
        """Record the label of this merchant's transaction at ``ts`` (labels come in any order)."""
        lower, levels = self.lower, self.levels
        level = 0
        while level < len(lower) and ts < lower[level]:
            level += 1
        width = LEVEL_WIDTHS_S[level]
        levels[level].add(ts // width * width + width - 1, 1, 1 if is_fraud else 0)
        while level < len(lower) and len(levels[level].times) > LEVEL_CAP:
            self._merge_oldest(level)
            level += 1
        cutoff = max([tier.times[-1] for tier in levels if tier.times]) - keep_days * DAY_S
        for tier in levels:
            times = tier.times
            if times and times[0] <= cutoff:
                tier.drop_through(cutoff)

    def _merge_oldest(self, level: int) -> None:
        """Raise ``lower[level]`` to the smallest boundary of the next level's width that leaves
        ``LEVEL_CAP`` entries in ``level``; move the older ones into the next level's buckets.

        ``lower[level]`` never passes ``lower[level - 1]``: at most the width ratio (60) entries
        of ``level`` lie between that and the next-level boundary below it, fewer than the cap.
        """
        tier = self.levels[level]
        width = LEVEL_WIDTHS_S[level + 1]
        oldest_kept = tier.times[len(tier) - LEVEL_CAP - 1]
        self.lower[level] = (oldest_kept // width + 1) * width
        for at, n, f in tier.take_before(self.lower[level]):
            self.levels[level + 1].add(_bucket_end(at, width), n, f)

    def features(self, ts: int, delay_s: int) -> list[float]:
        """The merchant features of a transaction at ``ts`` (see the module docstring)."""
        hi = ts - delay_s
        # A bucket counts only when its first second, width - 1 before the stored last
        # second, is inside the window too.
        tiers = [(tier, width - 1) for tier, width in zip(self.levels, LEVEL_WIDTHS_S,
                                                          strict=True) if tier.times]
        out: list[float] = []
        for w in MERCHANT_WINDOWS_DAYS:
            lo = hi - w * DAY_S
            n = f = 0
            for tier, edge in tiers:
                tn, tf = tier.counts(lo + edge, hi)
                n += tn
                f += tf
            out += [float(n), f / n if n else 0.0]
        # A compromised merchant stays compromised for weeks: recent, repeated fraud days say
        # more than one fraud share does.
        widest = max(MERCHANT_WINDOWS_DAYS)
        lo = hi - widest * DAY_S
        slots: set[int] = set()
        newest = [at for tier, edge in tiers
                  if (at := tier.fraud_points(lo + edge, hi, slots, hi)) is not None]
        since = (hi - max(newest)) / DAY_S if newest else float(widest + 1)
        return [*out, float(len(slots)), since]

    def copy(self) -> MerchantState:
        """An independent copy (what a decode of ``to_wire`` gives, without encoding)."""
        state = MerchantState()
        state.levels = tuple(tier.copy() for tier in self.levels)
        state.lower = self.lower[:]
        return state

    def to_wire(self) -> dict[str, Any]:
        """A compact JSON-able form: per level, delta-coded (bucket index, count, frauds)
        triples, flattened."""
        return {"v": WIRE_VERSION, "b": list(self.lower),
                "l": [tier.to_flat(width)
                      for tier, width in zip(self.levels, LEVEL_WIDTHS_S, strict=True)]}

    @classmethod
    def from_wire(cls, wire: Any) -> MerchantState:
        """Decode ``to_wire``'s form; the daily-bucket list of earlier releases is read as hour
        buckets at each day's last hour (counted once the whole day is ``delay`` old, so it
        never leaks). Anything else raises ``MerchantStateFormatError``."""
        state = cls()
        if not wire:
            return state
        hour = LEVEL_WIDTHS_S[-1]
        if isinstance(wire, list):
            try:
                days = sorted((int(d), int(n), int(f)) for d, n, f in wire)
            except (TypeError, ValueError) as exc:
                raise MerchantStateFormatError(
                    f"merchant state {str(wire)[:80]!r} is a list but not [[day, count, "
                    "frauds], ...] (the daily form)") from exc
            for d, n, f in days:
                state.levels[-1].add(_bucket_end((d + 1) * DAY_S - 1, hour), n, f)
            return state
        if not isinstance(wire, dict) or wire.get("v") != WIRE_VERSION:
            raise MerchantStateFormatError(
                f"merchant state {str(wire)[:80]!r} has no known wire form (expected version "
                f"{WIRE_VERSION} or the daily list); was it written by a newer release?")
        try:
            lower = [int(b) for b in wire["b"]]
            levels = wire["l"]
        except (KeyError, TypeError, ValueError) as exc:
            raise MerchantStateFormatError(
                f"merchant state {str(wire)[:80]!r} is not a valid version {WIRE_VERSION} "
                "form") from exc
        if (len(lower) != len(state.lower) or not isinstance(levels, list)
                or len(levels) != len(LEVEL_WIDTHS_S)):
            raise MerchantStateFormatError(
                f"merchant state {str(wire)[:80]!r} does not have {len(LEVEL_WIDTHS_S)} levels")
        state.lower = lower
        state.levels = tuple(_Tier.from_flat(flat, width)
                             for flat, width in zip(levels, LEVEL_WIDTHS_S, strict=True))
        return state


def _bucket_end(ts: int, width: int) -> int:
    return ts // width * width + width - 1
