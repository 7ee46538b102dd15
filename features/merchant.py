"""A merchant's labelled history and the merchant (terminal risk) features computed from it.

Merchant features, after the Fraud Detection Handbook, use only labels a live system would
know: those of transactions older than the label delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from features.windows import DAY_S, MERCHANT_KEEP_DAYS, MERCHANT_WINDOWS_DAYS


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
