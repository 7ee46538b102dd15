"""Simulated datasets turned into the records the system streams: transactions and labels."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson

from fraudstream.contracts import Label, Transaction
from fraudstream.simulator import Dataset
from fraudstream.simulator.records import format_timestamps
from fraudstream.streaming import Outgoing


def outgoing(ds: Dataset, start: int = 0, stop: int | None = None,
             with_labels: bool = True) -> Iterator[Outgoing]:
    """Transaction records (key = card_id) and, if asked, the label each one will get later."""
    stop = len(ds) if stop is None else min(stop, len(ds))
    chunk = 10_000
    for lo in range(start, stop, chunk):
        hi = min(lo + chunk, stop)
        stamps = format_timestamps(ds.timestamp_s[lo:hi]).tolist()
        ids = ds.transaction_id[lo:hi].tolist()
        cards = ds.card_id[lo:hi].tolist()
        merchants = ds.merchant_id[lo:hi].tolist()
        amounts = ds.amount[lo:hi].tolist()
        frauds = ds.is_fraud[lo:hi].tolist()
        times = ds.timestamp_s[lo:hi].tolist()
        for i in range(hi - lo):
            key = cards[i].encode()
            tx: Transaction = {"transaction_id": ids[i], "timestamp": stamps[i],
                               "card_id": cards[i], "merchant_id": merchants[i],
                               "amount": amounts[i]}
            value = orjson.dumps(tx)
            label = None
            if with_labels:
                confirmation: Label = {
                    "transaction_id": ids[i], "card_id": cards[i], "merchant_id": merchants[i],
                    "is_fraud": 1 if frauds[i] else 0, "timestamp": stamps[i],
                    "reported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                label = orjson.dumps(confirmation)
            yield Outgoing(key, value, label, int(times[i]))


#: Malformed variants injected by ``with_bad_records``: (expected error code, transform).
BAD_KINDS: tuple[tuple[str, str], ...] = (
    ("invalid_json", "truncate"),
    ("missing_field", "drop_amount"),
    ("bad_amount", "negative_amount"),
    ("bad_amount", "string_amount"),
    ("bad_timestamp", "absurd_timestamp"),
    ("duplicate_transaction", "duplicate"),
)


def corrupt(value: bytes, kind: str) -> bytes:
    """A malformed copy of a valid transaction record."""
    if kind == "truncate":
        return value[: len(value) // 2]
    body = orjson.loads(value)
    if kind == "drop_amount":
        del body["amount"]
    elif kind == "negative_amount":
        body["amount"] = -abs(body["amount"]) - 1
    elif kind == "string_amount":
        body["amount"] = str(body["amount"])
    elif kind == "absurd_timestamp":
        body["timestamp"] = "1970-01-01T00:00:00Z"
    elif kind == "duplicate":
        return value
    return orjson.dumps(body)


def with_bad_records(records: Iterator[Outgoing], every: int) -> Iterator[Outgoing]:
    """After every ``every``-th record, add a malformed one (cycling through ``BAD_KINDS``)."""
    kinds = 0
    for i, rec in enumerate(records, 1):
        yield rec
        if every > 0 and i % every == 0:
            _code, kind = BAD_KINDS[kinds % len(BAD_KINDS)]
            kinds += 1
            yield Outgoing(rec.key, corrupt(rec.value, kind))
