"""The JSON records the workers write: scores and dead letters (contracts in README.md)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson


def iso_now(now_s: float) -> str:
    """RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(now_s, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def score_record(*, transaction_id: str, card_id: str, score: float, decision: str,
                 model_version: str, degraded: bool, worker: str, scored_at: str,
                 ingested_at_ms: int, reasons: list[str], partition: int = -1,
                 offset: int = -1, features: dict[str, float] | None = None) -> bytes:
    """A score record; ``partition``/``offset`` locate the transaction record it decides."""
    body = {
        "transaction_id": transaction_id, "card_id": card_id, "score": round(score, 6),
        "decision": decision, "model_version": model_version, "degraded": degraded,
        "worker": worker, "scored_at": scored_at, "ingested_at_ms": ingested_at_ms,
        "reasons": reasons, "partition": partition, "offset": offset,
    }
    if features is not None:
        body["features"] = features
    return orjson.dumps(body)


def dead_letter_record(*, topic: str, partition: int, offset: int, payload: bytes | None,
                       error: str, reason: str, dead_lettered_at: str) -> bytes:
    return orjson.dumps({
        "topic": topic, "partition": partition, "offset": offset,
        "payload_b64": base64.b64encode(payload or b"").decode(), "error": error,
        "reason": reason, "dead_lettered_at": dead_lettered_at,
    })
