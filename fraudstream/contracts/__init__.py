"""The records fraudstream reads and writes on Kafka, defined once (README, "Contracts").

Each contract is a ``TypedDict``: the JSON object itself, so a writer builds one at no cost per
record and mypy checks every field name a writer or reader uses against this module. The JSON
Schemas under ``schemas/`` are generated from these definitions
(``python -m fraudstream.contracts.generate``); the API's OpenAPI document shows the
transaction's. Validation of untrusted input stays in ``workers/validation.py`` (precise
error codes, limits), which a schema cannot express.
"""

# No ``from __future__ import annotations``: a TypedDict reads NotRequired from real annotations
# (validation takes the required and optional fields from here at run time).
from typing import Literal, NotRequired

# typing_extensions' TypedDict: pydantic generates schemas only from it on Python < 3.12.
from typing_extensions import TypedDict

Decision = Literal["approve", "review", "decline"]
FailoverReason = Literal["crashed", "hung", "not_ready", "no_progress", "stopped"]


class Transaction(TypedDict):
    """A card transaction on ``transactions`` (key: ``card_id``)."""

    transaction_id: str
    """Unique id: non-blank, at most 128 printable characters."""
    timestamp: str
    """RFC 3339 with an offset, e.g. 2018-04-01T07:19:05Z."""
    card_id: str
    """The card (the record's key): non-blank, at most 128 printable characters."""
    merchant_id: str
    """The merchant: non-blank, at most 128 printable characters."""
    amount: float
    """0 to 1,000,000."""
    currency: NotRequired[str]
    """Optional, kept when a short printable string."""
    merchant_category: NotRequired[str]
    """Optional, kept when a short printable string."""
    country: NotRequired[str]
    """Optional, kept when a short printable string."""
    channel: NotRequired[str]
    """Optional, kept when a short printable string."""


class Score(TypedDict):
    """A transaction's decision on ``scores`` (key: ``card_id``; same partition as its input)."""

    transaction_id: str
    card_id: str
    score: float
    """Probability of fraud, 0 to 1."""
    decision: Decision
    model_version: str
    """The registry version that scored it."""
    degraded: bool
    """True when a fallback (rules) answered instead of the model."""
    worker: str
    """The worker that scored it."""
    scored_at: str
    """RFC 3339 UTC, milliseconds."""
    ingested_at_ms: int
    """The transaction record's Kafka timestamp (ms)."""
    reasons: list[str]
    """Features above the training data's 99th percentile, strongest first."""
    partition: int
    """Where the transaction record was read."""
    offset: int
    """Where the transaction record was read."""
    features: NotRequired[dict[str, float]]
    """The feature values, when the worker is configured to include them."""


class DeadLetter(TypedDict):
    """A record that could not be scored, on ``transactions.dlq``; never over the size limit."""

    topic: str
    partition: int
    offset: int
    payload_b64: str
    """The original bytes (base64), or their first bytes when they would not fit."""
    error: str
    """A stable code: invalid_json, missing_field, bad_amount, ... (README)."""
    reason: str
    """A sentence a person can act on; says what was cut."""
    dead_lettered_at: str
    """RFC 3339 UTC, milliseconds."""
    payload_redacted: NotRequired[bool]
    """Card-number or security-code fields were removed from the payload."""
    payload_truncated: NotRequired[bool]
    payload_bytes: NotRequired[int]
    """Size of the whole (redacted) payload, when truncated."""
    payload_sha256: NotRequired[str]
    """SHA-256 of the whole (redacted) payload, when truncated."""
    key_truncated: NotRequired[bool]
    key_bytes: NotRequired[int]
    key_sha256: NotRequired[str]
    key_b64: NotRequired[str]
    """The first bytes of a key over 256 bytes (base64)."""


class Label(TypedDict):
    """A delayed fraud confirmation on ``labels`` (key: ``card_id``)."""

    transaction_id: str
    card_id: str
    merchant_id: str
    is_fraud: Literal[0, 1]
    timestamp: str
    """The labelled transaction's own time (RFC 3339)."""
    reported_at: str
    """When the label was reported (RFC 3339)."""


class ModelUpdate(TypedDict):
    """An alias now points at a version, on ``model-updates`` (compacted; key: the alias)."""

    alias: str
    version: str
    generation: int
    """Increases with every promotion or rollback of the alias."""
    published_at: str
    """RFC 3339 UTC, milliseconds."""


class FailoverEvent(TypedDict):
    """The supervisor replaced a slot's worker, on ``fraudstream.events``."""

    event: Literal["failover"]
    slot: int
    reason: FailoverReason
    """Why: crashed, hung, not_ready, no_progress, or stopped (drained after SIGTERM)."""
    old_pid: int | None
    new_pid: int | None
    from_standby: bool
    at: str
    """RFC 3339 UTC."""


#: Every contract by the name of its schema file (``schemas/<name>.schema.json``).
CONTRACTS: dict[str, type] = {
    "transaction": Transaction, "score": Score, "dead-letter": DeadLetter, "label": Label,
    "model-update": ModelUpdate, "failover-event": FailoverEvent,
}
