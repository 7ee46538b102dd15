"""The contracts: one definition, its JSON Schemas up to date, and every writer conforming."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from fraudstream.api.app import create_app
from fraudstream.chaos.label_crash import label
from fraudstream.contracts import CONTRACTS
from fraudstream.contracts.generate import SCHEMAS_DIR, stale
from fraudstream.feeds import outgoing
from fraudstream.model_registry.updates import ModelUpdate
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.workers.messages import dead_letter_record, score_record
from fraudstream.workers.supervisor import FailoverEvent
from fraudstream.workers.validation import OPTIONAL, REQUIRED


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(name: str, record: bytes | dict[str, Any]) -> list[str]:
    body = orjson.loads(record) if isinstance(record, bytes) else record
    return [error.message for error in validator(name).iter_errors(body)]


def a_score(**changes: Any) -> dict[str, Any]:
    body = orjson.loads(score_record(
        transaction_id="t1", card_id="c1", score=0.93, decision="decline",
        model_version="v-1", degraded=False, worker="w1", scored_at="2026-12-02T10:00:00.000Z",
        ingested_at_ms=1, reasons=["amount"], partition=2, offset=7,
        features={"amount": 120.5}))
    return {**body, **changes}


def test_the_schema_files_are_generated_from_the_definitions() -> None:
    assert sorted(p.name for p in SCHEMAS_DIR.glob("*.schema.json")) == sorted(
        f"{name}.schema.json" for name in CONTRACTS)
    assert stale() == [], "run `python -m fraudstream.contracts.generate`"


def test_a_score_conforms_and_a_broken_one_does_not() -> None:
    assert problems("score", a_score()) == []
    missing = a_score()
    del missing["decision"]
    assert problems("score", missing) == ["'decision' is a required property"]
    assert problems("score", a_score(decision="maybe")) == [
        "'maybe' is not one of ['approve', 'review', 'decline']"]


@pytest.mark.parametrize("payload, key", [
    (b'{"transaction_id": "t1"', b"c1"),
    (b'{"card_number": "4111111111111111", "x": "' + b"y" * 200_000 + b'"}', b"k" * 5000),
    (None, None),
])
def test_dead_letters_conform_whatever_they_carry(payload: bytes | None,
                                                 key: bytes | None) -> None:
    record = dead_letter_record(topic="transactions", partition=1, offset=9, payload=payload,
                                error="invalid_json", reason="not JSON",
                                dead_lettered_at="2026-12-02T10:00:00.000Z", key=key)
    assert problems("dead-letter", record) == []


def test_the_simulated_feed_writes_transactions_and_labels_of_the_contract() -> None:
    ds = simulate(SimulationConfig(n_customers=20, n_terminals=40, nb_days=3, seed=1))
    sent = list(outgoing(ds, 0, 50, with_labels=True))
    assert len(sent) == 50
    for item in sent:
        assert problems("transaction", item.value) == []
        assert item.label is not None and problems("label", item.label) == []
    assert problems("label", label("M1", 3, 1_764_000_000.0)[1]) == []


def test_model_updates_and_failover_events_conform() -> None:
    assert problems("model-update", ModelUpdate("production", "v-2", 3).to_bytes()) == []
    event = FailoverEvent(0, "no_progress", 11, None, True, "2026-12-02T10:00:00Z")
    assert problems("failover-event", event.to_json()) == []
    assert problems("failover-event", {**orjson.loads(event.to_json()),
                                       "reason": "config_error"}) != []


def test_validation_takes_its_fields_from_the_contract() -> None:
    schema = json.loads((SCHEMAS_DIR / "transaction.schema.json").read_text())
    assert list(REQUIRED) == schema["required"] == [
        "transaction_id", "timestamp", "card_id", "merchant_id", "amount"]
    assert list(OPTIONAL) == [k for k in schema["properties"] if k not in schema["required"]]


def test_the_openapi_document_shows_the_transaction_schema() -> None:
    document = create_app(Settings(), start_background=False).openapi()
    body = document["paths"]["/api/transactions"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] is True
    assert schema["required"] == list(REQUIRED)
    assert set(schema["properties"]) == {*REQUIRED, *OPTIONAL}
