"""How much event-time history a worker's feature state holds, and so which features are warm.

"Warm" for a feature means: the history behind the state spans at least the feature's lookback
(``drift_scope.lookback_seconds``), in event time. That history is the sum of

- the event-time span of the traffic this worker has scored (newest minus oldest transaction
  time it was handed), and
- a *restored-state credit*, estimated once from the first ``probe_rows`` rows: a worker that
  starts on restored (or taken-over) state already has history behind its first transaction.
  For cards, the span of that history is read from the rows themselves: with a steady rate per
  card, ``sum(card_nb_tx_30d - 1) / sum(card_nb_tx_1d - 1)`` (the other transactions in the
  last 30 calendar days over those in the last 24 hours) estimates how many days the state
  remembers, up to 30; a cold state gives 0 (first rows have no other transactions), and a
  state a day old or younger gives about 1 whatever its age, so estimates under
  ``MIN_READABLE_DAYS`` earn no credit. For
  merchants the same ratio over labelled counts (``merchant_nb_tx_30d / merchant_nb_tx_1d``)
  shows whether 30 days of labels are there; the label delay behind them cannot be read from
  the rows, so merchants get credit only when the ratio says the widest window is full.

Limits, stated: the estimate assumes cards spend at a steady rate (a state restored from a stream
that is itself only days old reads as days old, as it should; a population that spends very
unevenly reads shorter, which only lengthens the warm-up); ratios of at least
``FULL_WINDOW_SHARE`` of 30 days count as a full window, because calendar-day windows and
sampling keep a fully warm ratio a little under 30.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fraudstream.features.windows import DAY_S
from fraudstream.monitoring.drift_scope import CARD_LONGEST_S, MERCHANT_LOOKBACK_S, lookback_seconds

#: Rows the restored-state credit is estimated from.
PROBE_ROWS = 200
#: A ratio of at least this share of 30 days counts as a full 30-day window.
FULL_WINDOW_SHARE = 0.8
#: Below this many days the ratio cannot tell a day of history from less (a state 2 hours old
#: also has everything in its last 24 hours, ratio 1): no credit, the state warms up again.
MIN_READABLE_DAYS = 1.5
WIDE_DAYS = 30


def history_days(wide: np.ndarray, narrow: np.ndarray, subtract_self: bool) -> float:
    """Days of history a state holds, from counts over a 30-day and a 1-day window per row.

    ``subtract_self``: the counts include the row's own transaction (card counts do, label
    counts do not). 0 when no row has anything in its 1-day window (nothing to scale by).
    """
    own = 1.0 if subtract_self else 0.0
    recent = float(np.sum(np.maximum(narrow - own, 0.0)))
    if recent <= 0:
        return 0.0
    return min(float(np.sum(np.maximum(wide - own, 0.0))) / recent, float(WIDE_DAYS))


class HistoryClock:
    """Tracks the event-time history behind a worker's state, per feature family."""

    def __init__(self, feature_names: Sequence[str], probe_rows: int = PROBE_ROWS) -> None:
        self.names = list(feature_names)
        self.probe_rows = probe_rows
        self.first_s: float | None = None
        self.last_s: float | None = None
        #: Restored-state credit in seconds per family ("card", "merchant"); None until probed.
        self.credit_s: dict[str, float] | None = None
        self._probe: list[np.ndarray] = []
        self._probed_rows = 0

    def observe(self, rows: np.ndarray, event_times: np.ndarray | None) -> None:
        """Account one batch: its rows (for the probe) and its transactions' event times."""
        if event_times is not None and len(event_times):
            lo, hi = float(np.min(event_times)), float(np.max(event_times))
            self.first_s = lo if self.first_s is None else min(self.first_s, lo)
            self.last_s = hi if self.last_s is None else max(self.last_s, hi)
        if self.credit_s is None and len(rows):
            self._probe.append(rows[: self.probe_rows - self._probed_rows])
            self._probed_rows += len(self._probe[-1])
            if self._probed_rows >= self.probe_rows:
                self.credit_s = self._estimate_credit(np.vstack(self._probe))
                self._probe = []

    def _estimate_credit(self, probe: np.ndarray) -> dict[str, float]:
        col = {name: i for i, name in enumerate(self.names)}
        credit = {"card": 0.0, "merchant": 0.0}
        if {"card_nb_tx_30d", "card_nb_tx_1d"} <= col.keys():
            days = history_days(probe[:, col["card_nb_tx_30d"]], probe[:, col["card_nb_tx_1d"]],
                                subtract_self=True)
            credit["card"] = (CARD_LONGEST_S if days >= FULL_WINDOW_SHARE * WIDE_DAYS
                              else days * DAY_S if days >= MIN_READABLE_DAYS else 0.0)
        if {"merchant_nb_tx_30d", "merchant_nb_tx_1d"} <= col.keys():
            days = history_days(probe[:, col["merchant_nb_tx_30d"]],
                                probe[:, col["merchant_nb_tx_1d"]], subtract_self=False)
            credit["merchant"] = (MERCHANT_LOOKBACK_S if days >= FULL_WINDOW_SHARE * WIDE_DAYS
                                  else 0.0)
        return credit

    @property
    def traffic_span_s(self) -> float:
        """Event-time span of the traffic observed (0 before any event time)."""
        if self.first_s is None or self.last_s is None:
            return 0.0
        return self.last_s - self.first_s

    def history_s(self, family: str) -> float:
        """Seconds of history behind the state of ``family`` ("card" or "merchant")."""
        credit = (self.credit_s or {}).get(family, 0.0)
        return self.traffic_span_s + credit

    def missing_s(self, feature: str) -> float:
        """Seconds of history ``feature`` still lacks (0 when warm)."""
        need = lookback_seconds(feature)
        if need == 0:
            return 0.0
        family = "merchant" if feature.startswith("merchant_") else "card"
        return max(need - self.history_s(family), 0.0)

    def warm(self, feature: str) -> bool:
        """Whether the state holds the history ``feature`` needs."""
        return self.missing_s(feature) <= 0
