"""Process-wide interpreter settings of a worker: the cyclic garbage collector and the GIL's
switch interval, both measured on 2026-12-01 (``fraudstream demo --rate 1000`` with labels,
two workers).

**Garbage collector.** With CPython's default thresholds (700, 10, 10) each worker ran a full
(generation 2) collection about every 2 s, each about 0.2 s long, over a heap of some 260,000
tracked objects, most of them built at start-up (Faust, aiokafka, scikit-learn, the model):
17 s of collector time in a 160 s run per worker, each pause a stop of the event loop. What a
worker allocates per record (decoded JSON, Kafka records, feature rows) is freed by reference
counting; reference cycles are rare. So the start-up heap is moved out of the collector's
reach once (``gc.freeze``) and a young collection runs every ``GEN0_THRESHOLD`` allocations
instead of every 700: the same run then spent about 2 s per worker in the collector, full
collections included.

**Switch interval.** The model runs in a thread (``workers.model_guard``: a model that hangs
must not stop the event loop). scikit-learn's gradient boosting releases the GIL once per tree
(200 of them) and must take it back after each; with the default 5 ms interval a busy event
loop keeps it up to 5 ms every time. A batch that takes the model 2–3 ms alone took 36 ms on
average inside a worker at 1,000 tx/s, and 0.27–0.49 s against a thread that never blocks. At
``SWITCH_INTERVAL_S`` the same worker's model calls took 14 ms (against the busy thread: 12 ms).
Faust's consumer runs in a thread of its own and waits for the GIL the same way.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

#: Container allocations (minus frees) between two young collections (CPython's default: 700).
GEN0_THRESHOLD = 20_000
#: Young collections per middle one, and middle ones per full one (CPython's defaults).
GEN1_THRESHOLD = 10
GEN2_THRESHOLD = 10
#: Longest time a thread holds the GIL while another waits for it (CPython's default: 5 ms).
SWITCH_INTERVAL_S = 0.001


def tune_runtime(gc_pauses: Any | None = None) -> None:
    """Set the switch interval, freeze what exists now, raise the young generation's
    threshold, and observe each collection's duration in ``gc_pauses`` (a histogram labelled
    by ``generation``), if given.

    Call it once, when start-up has built what the process keeps (app, model, metrics).
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    if gc_pauses is None:
        return
    children = [gc_pauses.labels(str(generation)) for generation in range(3)]
    started = [0.0]

    def observe(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            children[info["generation"]].observe(time.perf_counter() - started[0])

    gc.callbacks.append(observe)
