"""Which features drift is measured on, and how much event-time history each one needs.

A short live window can only be compared with the model's reference where both describe the
same population:

- **Calendar features** (``is_weekend``, ``is_night``) are left out. Their live share is set by
  the hour of the week the window covers (a night window is all ``is_night = 1``), while the
  reference averages every hour of many weeks: they "drift" twice a day by construction and
  never say anything an operator can act on. The model still uses them.
- **History features** (``card_*``, ``merchant_*``) describe a card's or a merchant's past. A
  state that holds less history than a feature's window gives lower counts and fewer
  "previous transaction" values than the reference (built on full histories), so they are
  measured only once the state is *warm* for them: the history behind the state spans at
  least the feature's lookback, in event time. The score depends on every feature, so it waits
  for the longest lookback.
- Context features (``amount``, ``log_amount``) depend on the transaction alone: always measured.
"""

from __future__ import annotations

from collections.abc import Sequence

from fraudstream.features.windows import DAY_S, MERCHANT_KEEP_DAYS, NO_PREVIOUS_S

#: Features left out of drift, with the reason (the module docstring says why; workers export
#: them as ``fraudstream_feature_drift_excluded{feature,reason}``).
EXCLUDED_FEATURES: dict[str, str] = {
    "is_weekend": "calendar",
    "is_night": "calendar",
}

#: The history a merchant feature needs: the widest merchant window plus the label delay
#: (``MERCHANT_KEEP_DAYS`` is defined to cover both).
MERCHANT_LOOKBACK_S = MERCHANT_KEEP_DAYS * DAY_S
#: A card feature over "the last 30 days", and the time since the previous transaction (capped
#: at ``NO_PREVIOUS_S``), need 30 days.
CARD_LONGEST_S = NO_PREVIOUS_S


def lookback_seconds(feature: str) -> int:
    """Event-time history (seconds) a feature needs before its live values are comparable.

    0 for features of the transaction alone.
    """
    if feature.startswith("merchant_"):
        return MERCHANT_LOOKBACK_S
    if feature.startswith("card_"):
        if feature.endswith("_1d"):
            return DAY_S
        if feature.endswith("_7d"):
            return 7 * DAY_S
        return CARD_LONGEST_S
    return 0


def measured_features(feature_names: Sequence[str]) -> list[str]:
    """The features drift is measured on (every one but ``EXCLUDED_FEATURES``), in order."""
    return [name for name in feature_names if name not in EXCLUDED_FEATURES]


def score_lookback_seconds(feature_names: Sequence[str]) -> int:
    """The score depends on every feature: it needs the longest lookback of them all."""
    return max((lookback_seconds(n) for n in feature_names), default=0)
