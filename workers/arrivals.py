"""Where a transaction's time goes before its batch: to reach the worker, then to reach a batch.

Each message is stamped as Faust's consumer turns it into a message on the event loop
(``Message.time_in``, monotonic; ``workers.faust_bridge.stamp_arrivals``). At the start of a
scoring batch each record's time is split there:

- **arrival age**: from its timestamp in Kafka to that hand-over (its producer, the broker,
  the fetch and Faust's consumer thread);
- **batch wait**: from the hand-over to the start of its batch (the batch window and the
  batches ahead of it).

The end-to-end latency (to the score written) is these two plus the batch's own scoring and
commit. Measured on 2026-12-04 (README, "Benchmark", session (v)) the tail at 1,000 tx/s was
about half in each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from prometheus_client import Histogram

from fraudstream.monitoring.metrics import observe_many


def observe_arrivals(events: Sequence[Any], arrival_age: Histogram, batch_wait: Histogram,
                     *, wall: Callable[[], float] = time.time,
                     mono: Callable[[], float] = time.monotonic) -> None:
    """Observe the arrival age and the batch wait of each of a batch's Faust ``events``
    (called as the batch starts). Records Faust did not stamp are left out."""
    now_wall, now_mono = wall(), mono()
    waited, stamped = [], []
    for event in events:
        message = event.message
        arrived, timestamp = message.time_in, message.timestamp
        if arrived is None or timestamp is None:
            continue
        waited.append(now_mono - arrived)
        stamped.append(timestamp)
    if not waited:
        return
    waits = np.maximum(np.asarray(waited), 0.0)
    observe_many(batch_wait, waits)
    # The hand-over on the wall clock: now, less the wait measured on the monotonic one.
    observe_many(arrival_age, np.maximum(now_wall - waits - np.asarray(stamped), 0.0))
