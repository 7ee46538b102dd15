"""Simulated datasets turned into the records the system streams: transactions and labels."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson

from fraudstream.streaming import Outgoing
from simulator import Dataset
from simulator.records import format_timestamps


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
        for i in range(hi - lo):
            key = cards[i].encode()
            value = orjson.dumps({"transaction_id": ids[i], "timestamp": stamps[i],
                                  "card_id": cards[i], "merchant_id": merchants[i],
                                  "amount": amounts[i]})
            label = None
            if with_labels:
                label = orjson.dumps({
                    "transaction_id": ids[i], "card_id": cards[i], "merchant_id": merchants[i],
                    "is_fraud": int(frauds[i]), "timestamp": stamps[i],
                    "reported_at": format_timestamps_now()})
            yield Outgoing(key, value, label)


def format_timestamps_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
