"""Validation of raw transaction records against the Transaction contract.

Every record either becomes a ``Transaction`` or a ``Rejection`` with a stable error code and a
sentence a person can act on; nothing raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

#: Timestamps outside this range are absurd for card payments (and break day arithmetic).
MIN_TIMESTAMP_S = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())
MAX_FUTURE_S = 2 * 86_400
#: Largest single amount accepted (in the transaction currency).
MAX_AMOUNT = 1_000_000.0
MAX_ID_LENGTH = 128
REQUIRED = ("transaction_id", "timestamp", "card_id", "merchant_id", "amount")


@dataclass(frozen=True, slots=True)
class Transaction:
    """A validated transaction; ``extra`` keeps unknown and optional fields as they came."""

    transaction_id: str
    ts: int
    timestamp: str
    card_id: str
    merchant_id: str
    amount: float


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record cannot be scored: ``error`` is a stable code, ``reason`` a sentence."""

    error: str
    reason: str


def parse_rfc3339(text: str) -> int | None:
    """Unix seconds of an RFC 3339 timestamp with an explicit offset, or None."""
    if not isinstance(text, str) or len(text) < 20 or len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp())


def validate(raw: bytes | None, now_s: float, max_bytes: int) -> Transaction | Rejection:
    """Turn raw record bytes into a Transaction, or say precisely why not."""
    if raw is None or len(raw) == 0:
        return Rejection("empty_record", "the record has no value; send a JSON transaction")
    if len(raw) > max_bytes:
        return Rejection("oversized", f"the record is {len(raw)} bytes, over the {max_bytes}-byte "
                         "limit; send one transaction per record")
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", f"the record is not valid JSON ({exc}); "
                         "send UTF-8 JSON objects")
    if not isinstance(body, dict):
        return Rejection("not_an_object", f"the record is a JSON {type(body).__name__}, "
                         "not an object with the transaction fields")
    missing = [f for f in REQUIRED if f not in body or body[f] is None]
    if missing:
        return Rejection("missing_field", f"required field(s) {', '.join(missing)} missing")
    for name in ("transaction_id", "card_id", "merchant_id"):
        value = body[name]
        if not isinstance(value, str) or not value.strip():
            return Rejection("bad_field_type", f"{name} must be a non-empty string, "
                             f"got {type(value).__name__} {str(value)[:40]!r}")
        if len(value) > MAX_ID_LENGTH:
            return Rejection("bad_field_type", f"{name} is {len(value)} characters, over "
                             f"{MAX_ID_LENGTH}")
    amount = body["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return Rejection("bad_amount", f"amount must be a number, got {type(amount).__name__} "
                         f"{str(amount)[:40]!r}")
    amount = float(amount)
    if math.isnan(amount) or math.isinf(amount):
        return Rejection("bad_amount", "amount is not a finite number")
    if amount < 0:
        return Rejection("bad_amount", f"amount {amount} is negative; refunds are not scored")
    if amount > MAX_AMOUNT:
        return Rejection("bad_amount", f"amount {amount} is over the {MAX_AMOUNT:.0f} limit")
    ts = parse_rfc3339(body["timestamp"])
    if ts is None:
        return Rejection("bad_timestamp", f"timestamp {str(body['timestamp'])[:40]!r} is not "
                         "RFC 3339 with a UTC offset, e.g. 2018-04-01T07:19:05Z")
    if ts < MIN_TIMESTAMP_S or ts > now_s + MAX_FUTURE_S:
        return Rejection("bad_timestamp", f"timestamp {body['timestamp']} is outside the "
                         "accepted range (2000-01-01 to two days from now)")
    return Transaction(body["transaction_id"], ts, body["timestamp"], body["card_id"],
                       body["merchant_id"], amount)
