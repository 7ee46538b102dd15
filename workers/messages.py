"""The JSON records the workers write: scores and dead letters (contracts in README.md).

No output may be larger than its topic accepts (``FRAUDSTREAM_MAX_MESSAGE_BYTES``): a record
that Kafka refuses stops the batch, and once made a worker exit on every restart. A dead letter
therefore carries its original bytes only when they fit; otherwise a bounded excerpt plus the
SHA-256 and size of the payload (and of the key), and its reason says so. Card numbers and
security codes are removed from a dead letter's payload before anything else.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import cast

import orjson

from fraudstream.contracts import DeadLetter, Decision, Score
from fraudstream.workers.validation import without_sensitive

#: Largest Kafka key an output carries; a longer one is replaced by its SHA-256 (outputs are
#: sent to an explicit partition, so the key only names the record, it does not route it).
MAX_KEY_BYTES = 256
#: Longest reason sentence, in characters.
MAX_REASON_CHARS = 1000
#: Room kept for the Kafka record's own framing and headers within the size limit.
RECORD_OVERHEAD_BYTES = 512
DEFAULT_MAX_BYTES = 65536


def iso_now(now_s: float) -> str:
    """RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(now_s, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def output_key(key: bytes | None) -> bytes | None:
    """The Kafka key an output is sent with: the input's, or its hash when it is too long."""
    if key is None or len(key) <= MAX_KEY_BYTES:
        return key
    return b"sha256:" + hashlib.sha256(key).hexdigest().encode()


def score_record(*, transaction_id: str, card_id: str, score: float, decision: str,
                 model_version: str, degraded: bool, worker: str, scored_at: str,
                 ingested_at_ms: int, reasons: list[str], partition: int = -1,
                 offset: int = -1, features: dict[str, float] | None = None) -> bytes:
    """A score record; ``partition``/``offset`` locate the transaction record it decides.

    Bounded by construction: ids are validated to at most 128 printable characters.
    """
    body: Score = {
        "transaction_id": transaction_id, "card_id": card_id, "score": round(score, 6),
        "decision": cast(Decision, decision), "model_version": model_version, "degraded": degraded,
        "worker": worker, "scored_at": scored_at, "ingested_at_ms": ingested_at_ms,
        "reasons": reasons, "partition": partition, "offset": offset,
    }
    if features is not None:
        body["features"] = features
    return orjson.dumps(body)


def dead_letter_record(*, topic: str, partition: int, offset: int, payload: bytes | None,
                       error: str, reason: str, dead_lettered_at: str,
                       key: bytes | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """A dead letter no larger than ``max_bytes`` minus the record overhead, whatever it holds.

    ``payload_b64`` is the original value when it fits (minus any card number or security
    code: then ``payload_redacted``); otherwise its first bytes, with ``payload_truncated``,
    ``payload_bytes`` and ``payload_sha256`` of the whole (redacted) payload. A key longer than
    ``MAX_KEY_BYTES`` is described the same way (``key_*`` fields); a shorter one travels as the
    Kafka key.
    """
    notes = []
    body: DeadLetter = {"topic": topic, "partition": partition, "offset": offset,
                            "payload_b64": "", "error": error, "reason": "",
                            "dead_lettered_at": dead_lettered_at}
    original = payload or b""
    redacted = without_sensitive(original) if original else None
    if redacted is not None:
        notes.append("card number or security code fields were removed from the payload")
        body["payload_redacted"] = True
    content = original if redacted is None else redacted
    if key is not None and len(key) > MAX_KEY_BYTES:
        notes.append(f"the {len(key)}-byte key is kept as an excerpt and its SHA-256")
        body.update({"key_truncated": True, "key_bytes": len(key),
                     "key_sha256": hashlib.sha256(key).hexdigest(),
                     "key_b64": base64.b64encode(key[:MAX_KEY_BYTES]).decode()})
    budget = max_bytes - RECORD_OVERHEAD_BYTES - len(output_key(key) or b"")
    # Room for the payload once everything else (with the longest notes) is written.
    longest = "the payload is kept as an excerpt of the first 00000000 bytes and its SHA-256"
    reason_limit = MAX_REASON_CHARS
    while True:
        body["reason"] = _sentence(reason, [*notes, longest], reason_limit)
        fixed = len(orjson.dumps({**body, "payload_truncated": True,
                                  "payload_bytes": len(content), "payload_sha256": "0" * 64}))
        if fixed <= budget or reason_limit == 0:
            break
        if "key_b64" in body:  # a small limit: the key's hash identifies it well enough
            del body["key_b64"]
        else:
            reason_limit = max(reason_limit - (fixed - budget), 0)
    room = max((budget - fixed) // 4 * 3, 0)
    if len(content) > room:
        notes.append(f"the payload is kept as an excerpt of the first {room} bytes and its "
                     "SHA-256")
        # Size and hash of what is kept (after redaction): a hash of a card number is no
        # safer than the number.
        body.update({"payload_truncated": True, "payload_bytes": len(content),
                     "payload_sha256": hashlib.sha256(content).hexdigest()})
        content = content[:room]
    body["reason"] = _sentence(reason, notes, reason_limit)
    body["payload_b64"] = base64.b64encode(content).decode()
    return orjson.dumps(body)


def _sentence(reason: str, notes: list[str], limit: int) -> str:
    if len(reason) > limit:
        reason = reason[:limit] + "…"
    return reason if not notes else f"{reason} ({'; '.join(notes)})"
