"""The windows the features look back over, shared by the card and merchant definitions."""

from __future__ import annotations

DAY_S = 86_400
CARD_WINDOWS_DAYS = (7, 30)
MERCHANT_WINDOWS_DAYS = (1, 7, 30)
#: Seconds since the card's previous transaction when it has none (30 days).
NO_PREVIOUS_S = 30 * DAY_S
#: Days a merchant keeps labelled history (must cover the longest window plus the delay).
MERCHANT_KEEP_DAYS = 40


def label_delay_s(delay_days: int) -> int:
    """The label delay in seconds: a label is usable once its transaction is this old."""
    return delay_days * DAY_S


def lookback_days(delay_days: int) -> int:
    """Days of history before a transaction that can change its features.

    Computing features over rows starting this many days before a window gives the window's
    rows exactly the features a computation over the whole history gives them.
    """
    return max(max(CARD_WINDOWS_DAYS), NO_PREVIOUS_S // DAY_S,
               max(MERCHANT_WINDOWS_DAYS) + delay_days) + 1
