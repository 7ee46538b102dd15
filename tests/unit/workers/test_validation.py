from datetime import UTC, datetime

import orjson
import pytest

from fraudstream.workers.validation import (
    MAX_ID_LENGTH,
    Rejection,
    Transaction,
    parse_rfc3339,
    validate,
    without_sensitive,
)

NOW = 1_800_000_000.0
GOOD = {"transaction_id": "t1", "timestamp": "2026-11-01T10:00:00Z", "card_id": "C1",
        "merchant_id": "M1", "amount": 12.5}


def check(body: object, max_bytes: int = 65536) -> Transaction | Rejection:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return validate(raw, NOW, max_bytes)


def test_valid_transaction_keeps_the_contract_fields_and_drops_the_rest() -> None:
    tx = check({**GOOD, "currency": "EUR", "channel": "web", "unknown": [1, 2],
                "pan": "4111111111111111", "cvv": "123", "country": 7})
    assert isinstance(tx, Transaction)
    assert (tx.transaction_id, tx.card_id, tx.merchant_id, tx.amount) == ("t1", "C1", "M1", 12.5)
    assert tx.ts == parse_rfc3339("2026-11-01T10:00:00+00:00")
    assert tx.extra == {"currency": "EUR", "channel": "web"}  # country is not a string


def at(seconds_from_now: float) -> str:
    return datetime.fromtimestamp(NOW + seconds_from_now, UTC).isoformat().replace("+00:00", "Z")


def test_the_future_ends_at_the_clock_skew() -> None:
    assert isinstance(check({**GOOD, "timestamp": at(299)}), Transaction)
    for ahead in (301, 3600, 47 * 3600):  # two days ahead were accepted before
        late = check({**GOOD, "timestamp": at(ahead)})
        assert isinstance(late, Rejection) and late.error == "bad_timestamp"
        assert "FRAUDSTREAM_MAX_CLOCK_SKEW_S" in late.reason
    wider = validate(orjson.dumps({**GOOD, "timestamp": at(3000)}), NOW, 65536, 3600.0)
    assert isinstance(wider, Transaction)


@pytest.mark.parametrize("name", ["transaction_id", "card_id", "merchant_id"])
@pytest.mark.parametrize("bad", ["a\x00b", "a\x1b[31mred", "a\nb", "a\rb", "\u202eabc",
                                 "a\u2028b", "a\u200bb", "a\x7fb", "a\x85b", "a\tb", " ",
                                 "", "x" * (MAX_ID_LENGTH + 1)])
def test_identifiers_are_printable_and_bounded(name: str, bad: str) -> None:
    result = check({**GOOD, name: bad})
    assert isinstance(result, Rejection) and result.error == "bad_identifier"
    assert name in result.reason
    assert result.reason.isprintable()  # the reason never carries the raw character


def test_printable_identifiers_of_any_script_pass() -> None:
    good = {"transaction_id": "tx-é-ü-日本-" + "x" * 100, "card_id": "карта 42",
            "merchant_id": "m" * MAX_ID_LENGTH}
    assert isinstance(check({**GOOD, **good}), Transaction)


def test_card_numbers_and_security_codes_are_removed_at_any_depth() -> None:
    raw = orjson.dumps({**GOOD, "PAN": "4111111111111111", "card": {"cvv": 123, "x": 1},
                        "items": [{"Card-Number": "5500000000000004"}]})
    cleaned = without_sensitive(raw)
    assert cleaned is not None
    assert b"4111" not in cleaned and b"5500" not in cleaned and b"123" not in cleaned
    assert orjson.loads(cleaned)["card"] == {"x": 1}
    assert without_sensitive(orjson.dumps(GOOD)) is None


def test_card_numbers_are_masked_in_records_that_are_not_json() -> None:
    cleaned = without_sensitive(b'{"card_id": "C1", "pan": "4111111111111111", "cvc": 123,')
    assert cleaned == b'{"card_id": "C1", "pan": "[redacted]", "cvc": "[redacted]",'


@pytest.mark.parametrize(("raw", "error", "fragment"), [
    (b"", "empty_record", "no value"),
    (b"{not json", "invalid_json", "not valid JSON"),
    (b'{"amount": NaN}', "invalid_json", "not valid JSON"),
    (b"[1, 2]", "not_an_object", "JSON list"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "amount"}), "missing_field", "amount"),
    (orjson.dumps({**GOOD, "card_id": None}), "missing_field", "card_id"),
    (orjson.dumps({**GOOD, "card_id": 42}), "bad_field_type", "card_id must be"),
    (orjson.dumps({**GOOD, "merchant_id": ""}), "bad_identifier", "merchant_id"),
    (orjson.dumps({**GOOD, "amount": "12.5"}), "bad_amount", "must be a number"),
    (orjson.dumps({**GOOD, "amount": True}), "bad_amount", "must be a number"),
    (orjson.dumps({**GOOD, "amount": -1}), "bad_amount", "negative"),
    (orjson.dumps({**GOOD, "amount": 1e12}), "bad_amount", "over"),
    (orjson.dumps({**GOOD, "timestamp": "yesterday"}), "bad_timestamp", "RFC 3339"),
    (orjson.dumps({**GOOD, "timestamp": "2026-11-01T10:00:00"}), "bad_timestamp", "RFC 3339"),
    (orjson.dumps({**GOOD, "timestamp": "1970-01-01T00:00:00Z"}), "bad_timestamp", "before 2000"),
    (orjson.dumps({**GOOD, "timestamp": "2099-01-01T00:00:00Z"}), "bad_timestamp", "ahead"),
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
