"""Validation of raw transaction records against the Transaction contract.

Every record either becomes a ``Transaction`` or a ``Rejection`` with a stable error code and a
sentence a person can act on; nothing raises. The identifier rule and the list of fields that
must never be stored (card numbers, CVVs) live here, once, for transactions and labels alike.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from fraudstream.contracts import Transaction as ContractTransaction

#: Timestamps outside this range are absurd for card payments (and break day arithmetic).
MIN_TIMESTAMP_S = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())
#: How far ahead of the worker's clock an event time may be (FRAUDSTREAM_MAX_CLOCK_SKEW_S):
#: history leaves a card's window relative to its newest event time, so a record from the
#: future would evict the history every later record needs.
DEFAULT_CLOCK_SKEW_S = 300.0
#: Largest single amount accepted (in the transaction currency).
MAX_AMOUNT = 1_000_000.0
MAX_ID_LENGTH = 128
#: The contract's fields (``fraudstream.contracts.Transaction``), in its order.
REQUIRED = tuple(k for k in ContractTransaction.__annotations__
                 if k in ContractTransaction.__required_keys__)
#: The contract's optional fields: kept when they are short printable strings, all else dropped.
OPTIONAL = tuple(k for k in ContractTransaction.__annotations__
                 if k in ContractTransaction.__optional_keys__)
MAX_OPTIONAL_LENGTH = 64
#: Field names (case and separators ignored) that hold card numbers or card security codes:
#: never written anywhere, in scores, dead letters or logs.
SENSITIVE_FIELDS = frozenset({
    "pan", "cardnumber", "cardno", "cardnum", "primaryaccountnumber", "accountnumber",
    "cvv", "cvv2", "cvc", "cvc2", "cid", "csc", "securitycode", "cardsecuritycode",
    "cardverificationvalue", "track1", "track2", "trackdata", "pin", "pinblock",
})
_SENSITIVE_VALUE = re.compile(
    rb'("(?:[^"\\]|\\.)*"\s*:\s*)("(?:[^"\\]|\\.)*"|-?[0-9][0-9eE.+-]*)')


@dataclass(frozen=True, slots=True)
class Transaction:
    """A validated transaction; ``extra`` keeps the contract's optional fields, nothing else."""

    transaction_id: str
    ts: int
    timestamp: str
    card_id: str
    merchant_id: str
    amount: float
    extra: dict[str, str] = field(default_factory=dict)


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


def excerpt(value: object, limit: int = 40) -> str:
    """A short, printable-only rendering of a value for a reason sentence (never the whole)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)[1:-1] if not text.isprintable() else text


def identifier_problem(name: str, value: object) -> Rejection | None:
    """Why ``value`` cannot be the identifier ``name``, or None.

    Identifiers reach logs, terminals (``fraudstream tail``) and CSV files: printable
    characters only (no control, format, bidi or line-separator characters; Python's
    ``str.isprintable``), at most ``MAX_ID_LENGTH`` characters, not blank.
    """
    if not isinstance(value, str):
        return Rejection("bad_field_type", f"{name} must be a non-empty string, got "
                         f"{type(value).__name__} {excerpt(value)}")
    if len(value) > MAX_ID_LENGTH:
        return Rejection("bad_identifier", f"{name} is {len(value)} characters, over the "
                         f"{MAX_ID_LENGTH}-character limit")
    if not value.strip():
        return Rejection("bad_identifier", f"{name} is empty or blank; send a non-empty id")
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        return Rejection("bad_identifier", f"{name} {excerpt(value)} holds the unprintable "
                         f"character U+{ord(bad):04X}; ids must be printable characters only")
    return None


def clock_problem(ts: int, text: object, now_s: float, max_skew_s: float) -> Rejection | None:
    """Why event time ``ts`` cannot be accepted at wall time ``now_s``, or None."""
    if ts < MIN_TIMESTAMP_S:
        return Rejection("bad_timestamp", f"timestamp {excerpt(text)} is before 2000-01-01")
    if ts > now_s + max_skew_s:
        return Rejection("bad_timestamp", f"timestamp {excerpt(text)} is {ts - now_s:.0f} s "
                         f"ahead of the worker's clock, over the {max_skew_s:.0f} s accepted "
                         "(FRAUDSTREAM_MAX_CLOCK_SKEW_S); check the producer's clock")
    return None


def is_sensitive(name: str) -> bool:
    """True for a field that holds a card number or security code (``pan``, ``cvv``...)."""
    return name.lower().replace("_", "").replace("-", "").replace(" ", "") in SENSITIVE_FIELDS


def validate(raw: bytes | None, now_s: float, max_bytes: int,
             max_skew_s: float = DEFAULT_CLOCK_SKEW_S) -> Transaction | Rejection:
    """Turn raw record bytes into a Transaction, or say precisely why not."""
    if raw is None or len(raw) == 0:
        return Rejection("empty_record", "the record has no value; send a JSON transaction")
    if len(raw) > max_bytes:
        return Rejection("oversized", f"the record is {len(raw)} bytes, over the {max_bytes}-byte "
                         "limit; send one transaction per record")
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", f"the record is not valid JSON ({excerpt(str(exc), 120)}"
                         "); send UTF-8 JSON objects")
    if not isinstance(body, dict):
        return Rejection("not_an_object", f"the record is a JSON {type(body).__name__}, "
                         "not an object with the transaction fields")
    missing = [f for f in REQUIRED if f not in body or body[f] is None]
    if missing:
        return Rejection("missing_field", f"required field(s) {', '.join(missing)} missing")
    for name in ("transaction_id", "card_id", "merchant_id"):
        value = body[name]
        # The common case in one expression; the function says what is wrong otherwise.
        if not (value.__class__ is str and len(value) <= MAX_ID_LENGTH and value.isprintable()
                and value and not value.isspace()):
            problem = identifier_problem(name, value)
            if problem is not None:
                return problem
    amount = body["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return Rejection("bad_amount", f"amount must be a number, got {type(amount).__name__} "
                         f"{excerpt(amount)}")
    try:
        amount = float(amount)
    except OverflowError:  # an integer too large for a float
        return Rejection("bad_amount", "amount is not a finite number")
    if math.isnan(amount) or math.isinf(amount):
        return Rejection("bad_amount", "amount is not a finite number")
    if amount < 0:
        return Rejection("bad_amount", f"amount {amount} is negative; refunds are not scored")
    if amount > MAX_AMOUNT:
        return Rejection("bad_amount", f"amount {amount:.6g} is over the {MAX_AMOUNT:.0f} limit")
    ts = parse_rfc3339(body["timestamp"])
    if ts is None:
        return Rejection("bad_timestamp", f"timestamp {excerpt(body['timestamp'])} is not "
                         "RFC 3339 with a UTC offset, e.g. 2018-04-01T07:19:05Z")
    if not MIN_TIMESTAMP_S <= ts <= now_s + max_skew_s:
        problem = clock_problem(ts, body["timestamp"], now_s, max_skew_s)
        if problem is not None:
            return problem
    extra = {} if len(body) == len(REQUIRED) else {
        name: value for name in OPTIONAL
        if isinstance(value := body.get(name), str) and len(value) <= MAX_OPTIONAL_LENGTH
        and value.isprintable()}
    return Transaction(body["transaction_id"], ts, body["timestamp"], body["card_id"],
                       body["merchant_id"], amount, extra)


def without_sensitive(raw: bytes) -> bytes | None:
    """``raw`` with every card-number and security-code field removed, or None if it has none.

    A JSON document loses those fields at any depth; bytes that are not JSON get the values
    after such field names blanked out, as far as they can be found.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _masked(raw)
    found = False
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for name in [k for k in node if is_sensitive(k)]:
                del node[name]
                found = True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return orjson.dumps(body) if found else None


def _masked(raw: bytes) -> bytes | None:
    found = False

    def mask(match: re.Match[bytes]) -> bytes:
        nonlocal found
        name = match.group(1).rstrip().rstrip(b":").rstrip().strip(b'"')
        if not is_sensitive(name.decode("utf-8", "replace")):
            return match.group(0)
        found = True
        return match.group(1) + b'"[redacted]"'

    masked = _SENSITIVE_VALUE.sub(mask, raw)
    return masked if found else None
