"""The features of a transaction, defined once and used by training and serving alike.

Card features (customer spending behaviour) use the card's own history up to and including the
transaction; merchant features (terminal risk, after the Fraud Detection Handbook) use only
labelled history older than the label delay, as a live system would know it.

Windows: the 1-day card window is the exact last 24 hours; 7- and 30-day windows are calendar
days (UTC) ending on the transaction's day, which keeps the state small enough to replicate
through a changelog on every update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DAY_S = 86_400
CARD_WINDOWS_DAYS = (7, 30)
MERCHANT_WINDOWS_DAYS = (1, 7, 30)
#: Seconds since the card's previous transaction when it has none (30 days).
NO_PREVIOUS_S = 30 * DAY_S
#: Days a merchant keeps labelled history (must cover the longest window plus the delay).
MERCHANT_KEEP_DAYS = 40


def lookback_days(delay_days: int) -> int:
    """Days of history before a transaction that can change its features.

    Computing features over rows starting this many days before a window gives the window's
    rows exactly the features a computation over the whole history gives them.
    """
    return max(max(CARD_WINDOWS_DAYS), NO_PREVIOUS_S // DAY_S,
               max(MERCHANT_WINDOWS_DAYS) + delay_days) + 1

FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    "log_amount",
    "is_weekend",
    "is_night",
    "card_nb_tx_1d",
    "card_avg_amount_1d",
    *(f"card_{kind}_{w}d" for w in CARD_WINDOWS_DAYS for kind in ("nb_tx", "avg_amount")),
    "card_amount_to_avg_30d",
    "card_log_seconds_since_last",
    *(f"merchant_{kind}_{w}d" for w in MERCHANT_WINDOWS_DAYS for kind in ("nb_tx", "risk")),
    "merchant_fraud_days_30d",
    "merchant_days_since_fraud",
)


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


@dataclass
class MerchantState:
    """A merchant's labelled history: daily (transactions, frauds) buckets by transaction day."""

    days: dict[int, tuple[int, int]] = field(default_factory=dict)

    def observe_label(self, ts: int, is_fraud: bool,
                      keep_days: int = MERCHANT_KEEP_DAYS) -> None:
        """Count a labelled transaction of this merchant (labels arrive late, in any order)."""
        day = ts // DAY_S
        n, f = self.days.get(day, (0, 0))
        self.days[day] = (n + 1, f + int(bool(is_fraud)))
        newest = max(self.days)
        for old in [d for d in self.days if d <= newest - keep_days]:
            del self.days[old]

    def features(self, ts: int, delay_days: int) -> list[float]:
        """Transactions and fraud share over each window ending ``delay_days`` before ``ts``, the
        days with a known fraud in the widest window, and days since the newest of them."""
        end = ts // DAY_S - delay_days
        out: list[float] = []
        for w in MERCHANT_WINDOWS_DAYS:
            n = f = 0
            for d, (dn, df) in self.days.items():
                if end - w < d <= end:
                    n += dn
                    f += df
            out += [float(n), f / n if n else 0.0]
        # A compromised merchant stays compromised for weeks: recent, repeated fraud days say
        # more than one fraud share does.
        widest = max(MERCHANT_WINDOWS_DAYS)
        fraud_days = [d for d, (_n, f) in self.days.items() if f and end - widest < d <= end]
        since = end - max(fraud_days) if fraud_days else widest + 1
        return [*out, float(len(fraud_days)), float(since)]

    def to_wire(self) -> list[list[int]]:
        return [[d, n, f] for d, (n, f) in self.days.items()]

    @classmethod
    def from_wire(cls, wire: list | None) -> MerchantState:
        if not wire:
            return cls()
        return cls({int(d): (int(n), int(f)) for d, n, f in wire})


def context_features(ts: int, amount: float) -> list[float]:
    """Features of the transaction alone: amount, weekend, night (UTC)."""
    days_since_epoch, second_of_day = divmod(ts, DAY_S)
    weekday = (days_since_epoch + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return [amount, math.log1p(amount), float(weekday >= 5), float(second_of_day < 6 * 3600)]


def compute_features(ts: int, amount: float, card: CardState, merchant: MerchantState,
                     delay_days: int) -> list[float]:
    """The full feature vector of one transaction; updates ``card`` with it."""
    return [*context_features(ts, amount), *card.observe(ts, amount),
            *merchant.features(ts, delay_days)]
