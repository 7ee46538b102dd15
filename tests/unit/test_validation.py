import orjson
import pytest

from workers.validation import Rejection, Transaction, parse_rfc3339, validate

NOW = 1_800_000_000.0
GOOD = {"transaction_id": "t1", "timestamp": "2026-11-01T10:00:00Z", "card_id": "C1",
        "merchant_id": "M1", "amount": 12.5}


def check(body: object, max_bytes: int = 65536) -> Transaction | Rejection:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return validate(raw, NOW, max_bytes)


def test_valid_transaction_keeps_fields() -> None:
    tx = check({**GOOD, "currency": "EUR", "unknown": [1, 2]})
    assert isinstance(tx, Transaction)
    assert (tx.transaction_id, tx.card_id, tx.merchant_id, tx.amount) == ("t1", "C1", "M1", 12.5)
    assert tx.ts == parse_rfc3339("2026-11-01T10:00:00+00:00")


@pytest.mark.parametrize(("raw", "error", "fragment"), [
    (b"", "empty_record", "no value"),
    (b"{not json", "invalid_json", "not valid JSON"),
    (b'{"amount": NaN}', "invalid_json", "not valid JSON"),
    (b"[1, 2]", "not_an_object", "JSON list"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "amount"}), "missing_field", "amount"),
    (orjson.dumps({**GOOD, "card_id": None}), "missing_field", "card_id"),
    (orjson.dumps({**GOOD, "card_id": 42}), "bad_field_type", "card_id must be"),
    (orjson.dumps({**GOOD, "merchant_id": ""}), "bad_field_type", "merchant_id"),
    (orjson.dumps({**GOOD, "amount": "12.5"}), "bad_amount", "must be a number"),
    (orjson.dumps({**GOOD, "amount": True}), "bad_amount", "must be a number"),
    (orjson.dumps({**GOOD, "amount": -1}), "bad_amount", "negative"),
    (orjson.dumps({**GOOD, "amount": 1e12}), "bad_amount", "over"),
    (orjson.dumps({**GOOD, "timestamp": "yesterday"}), "bad_timestamp", "RFC 3339"),
    (orjson.dumps({**GOOD, "timestamp": "2026-11-01T10:00:00"}), "bad_timestamp", "RFC 3339"),
    (orjson.dumps({**GOOD, "timestamp": "1970-01-01T00:00:00Z"}), "bad_timestamp", "range"),
    (orjson.dumps({**GOOD, "timestamp": "2099-01-01T00:00:00Z"}), "bad_timestamp", "range"),
    (orjson.dumps({**GOOD, "timestamp": 1234}), "bad_timestamp", "RFC 3339"),
])
def test_rejections_name_the_problem(raw: bytes, error: str, fragment: str) -> None:
    result = check(raw)
    assert isinstance(result, Rejection)
    assert result.error == error
    assert fragment in result.reason


def test_oversized_record_is_rejected_before_parsing() -> None:
    result = check({**GOOD, "note": "x" * 2000}, max_bytes=1000)
    assert isinstance(result, Rejection) and result.error == "oversized"
