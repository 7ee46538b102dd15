"""Submitting transactions (to the transactions topic) and reading their decisions."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

import orjson
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from fraudstream.api.deps import StateDep, TokenDep, read_capped
from fraudstream.contracts.generate import schema
from fraudstream.workers.validation import REQUIRED, Rejection, Transaction, validate

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["decisions"])
#: How long a submission may wait for Kafka, first to take the record, then to confirm it.
SEND_TIMEOUT_S = 10.0


@router.post("/transactions", status_code=202, openapi_extra={
    "requestBody": {"required": True, "content": {"application/json": {
        "schema": schema("transaction", standalone=False)}}}})
async def submit_transaction(request: Request, state: StateDep, _auth: TokenDep) -> JSONResponse:
    """Validate one transaction (the JSON body) and produce it keyed by card_id: its exact
    bytes, or, when it has fields the contract does not name, the contract's fields only."""
    settings = state.settings
    limit = settings.max_message_bytes
    raw = await read_capped(request, limit)
    if raw is None:
        return JSONResponse({"error": "oversized", "reason": f"the body is over the {limit}-byte "
                             "limit; send one transaction per request"}, status_code=422)
    result = validate(raw, time.time(), limit, settings.max_clock_skew_s)
    if isinstance(result, Rejection):
        return JSONResponse({"error": result.error, "reason": result.reason}, status_code=422)
    raw, dropped = contract_fields_only(raw, result)
    producer = state.background.producer_for_requests()
    if producer is None:
        return JSONResponse({"error": "kafka_unavailable", "reason": "the API is not connected "
                             "to Kafka yet; see GET /health"}, status_code=503)
    key = result.card_id.encode("utf-8")
    try:
        # Cancelling send() itself (on timeout) leaves nothing queued, so "not accepted" is true.
        async with asyncio.timeout(SEND_TIMEOUT_S):
            delivery = await producer.send(settings.topic_transactions, raw, key=key)
    except (KafkaError, TimeoutError) as exc:
        logger.warning("Kafka did not take transaction %s: %r", result.transaction_id, exc)
        return JSONResponse({"error": "kafka_unavailable", "reason": "Kafka did not take the "
                             f"transaction ({type(exc).__name__}); it was not accepted, "
                             "retry later"}, status_code=503)
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            meta = await asyncio.shield(delivery)
    except (KafkaError, TimeoutError) as exc:
        logger.warning("Kafka did not confirm transaction %s: %r", result.transaction_id, exc)
        return JSONResponse({"error": "delivery_unconfirmed", "reason": "Kafka did not confirm "
                             f"the write ({type(exc).__name__}); it may still be written, so "
                             "check GET /api/decisions/ID before resending"}, status_code=504)
    state.metrics.submitted.inc()
    answer: dict[str, object] = {"transaction_id": result.transaction_id, "status": "accepted",
                                 "partition": meta.partition, "offset": meta.offset}
    if dropped:
        answer["dropped_fields"] = dropped
    return JSONResponse(answer, status_code=202)


def contract_fields_only(raw: bytes, tx: Transaction) -> tuple[bytes, int]:
    """The bytes to produce and how many fields were left out of them.

    A body with only the contract's fields is produced exactly as sent; any other field (a
    card number or CVV among them) never reaches Kafka: the record is written again with the
    required fields as sent and the valid optional ones.
    """
    body = orjson.loads(raw)
    kept = (*REQUIRED, *tx.extra)
    dropped = len(body) - len(kept)
    if not dropped:
        return raw, 0
    return orjson.dumps({name: body[name] for name in kept}), dropped


@router.get("/decisions/{transaction_id}")
async def get_decision(transaction_id: str, state: StateDep,
                       wait_s: Annotated[float, Query(ge=0, le=30, description="wait up to this "
                                                      "many seconds for the decision")] = 0,
                       ) -> Response:
    """The latest score record of a transaction, as written to the scores topic; else 404."""
    record = await state.decisions.wait_for(transaction_id, wait_s)
    if record is None:
        return JSONResponse({"detail": f"no decision yet for transaction {transaction_id}; "
                             "it may still be in flight"}, status_code=404)
    return Response(record, media_type="application/json")
