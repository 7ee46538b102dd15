"""Cost of one busy card: per-transaction time and state record size at n transactions in 24 h.

Run from the repository root: ``.venv/bin/python -m fraudstream.bench.hot_card``. It feeds one
card n transactions spread evenly over 24 hours of event time, then times the second batch of
500 through the scoring step's card path (decode the record, dedup lookup, features, remember,
settle, encode, as the worker does once per batch) and prints the time per transaction and the
size of the card's changelog record after it. ``PYTHONPATH=/path/to/old/checkout`` measures
another version of the code with the same script.
"""

from __future__ import annotations

import sys
import time

import orjson

from fraudstream.features import CardState
from fraudstream.workers.card_record import CardRecord, Decision

T0 = 1_700_000_000
BATCH = 500


def measure(n: int) -> tuple[float, int]:
    """(microseconds per transaction, record bytes) for the batch after n transactions.

    The card's first n transactions are written straight into its record in the plain list
    form every version reads, so a version whose cost grows with n is measured in seconds,
    not in the hours its whole history would take.
    """
    step = 86_000 / (n + 2 * BATCH)
    recent = [[T0 + int(i * step), 10.0 + i % 7] for i in range(n)]
    days: dict[int, list[float]] = {}
    for t, a in recent:
        entry = days.setdefault(int(t) // 86_400, [0, 0.0])
        entry[0] += 1
        entry[1] += a
    decisions = [[f"tx-{i:08d}", T0 + int(i * step), 0, i, 0.1, "approve", "v1"]
                 for i in range(max(n - 256, 0), n)]
    wire = [[recent[-1][0], recent, [[d, c, s] for d, (c, s) in days.items()]], decisions]
    raw = orjson.dumps(wire)
    # The first batch turns the list form into this version's own; the second is timed.
    for first in (n, n + BATCH):
        began = time.perf_counter()
        card = CardRecord.from_wire(orjson.loads(raw))
        for i in range(first, first + BATCH):
            ts = T0 + int(i * step)
            tx_id = f"tx-{i:08d}"
            card.find(tx_id)
            card.state.observe(ts, 10.0 + i % 7)
            card.remember(Decision(tx_id, ts, 0, i, -1.0, "", ""))
            card.settle(tx_id, 0.1, "approve", "v1")
        raw = orjson.dumps(card.to_wire())
    return (time.perf_counter() - began) / BATCH * 1e6, len(raw)


def main() -> None:
    print(f"{'n':>7} {'us/tx':>10} {'record bytes':>14}  ({CardState.__module__})")
    for n in [int(a) for a in sys.argv[1:]] or [1_000, 20_000, 56_000]:
        per_tx, size = measure(n)
        print(f"{n:>7,} {per_tx:>10,.1f} {size:>14,}")


if __name__ == "__main__":
    main()
