"""How long a worker takes to get its card table back, by store and number of cards.

For each store (``memory``, ``rocksdb``) and each size, one worker (all partitions) of a fresh
app is started once on an empty table (the baseline: imports, model, group join), stopped, and
its ``cards`` changelog is filled with ``cards`` records of a realistic size. Then:

- **cold**: the worker starts with nothing on local disk and restores the whole changelog;
- **warm**: it is SIGKILLed, the changelog gets ``tail`` more records (as if another worker had
  owned the partitions meanwhile), and it starts again in its slot.

Each start is timed to readiness, and the seconds its /ready said "restoring" are counted. The
memory store replays everything on both starts; RocksDB keeps what it has and reads the tail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import signal
import time
from dataclasses import dataclass

from fraudstream.bench.harness import discard, fresh
from fraudstream.operations.big_state import fill_card_changelog
from fraudstream.settings import Settings
from fraudstream.workers.pool import WorkerProcess, worker_datadir
from fraudstream.workers.topics import card_changelog_spec, ensure_topics

#: Longest wait for one worker start (1M cards restore from nothing on a busy 2-core machine).
START_TIMEOUT_S = 900.0


@dataclass
class RestoreRun:
    store: str
    cards: int
    #: Seconds to readiness of the first start, on an empty table.
    baseline_s: float
    cold_s: float
    cold_restoring_s: float
    warm_s: float
    warm_restoring_s: float
    tail: int

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def timed_start(worker: WorkerProcess) -> tuple[float, float]:
    """Start ``worker``; (seconds to ready, seconds /ready said restoring)."""
    started = time.monotonic()
    worker.start()
    restoring_s, last = 0.0, started
    while True:
        time.sleep(0.2)
        now = time.monotonic()
        if not worker.alive():
            raise RuntimeError(f"worker exited during restore:\n{worker.log_tail()}")
        if now - started > START_TIMEOUT_S:
            worker.signal(signal.SIGKILL)
            raise RuntimeError(f"worker not ready within {START_TIMEOUT_S:.0f} s")
        body = worker.readiness(timeout=2.0) or {}
        if body.get("restoring"):
            restoring_s += now - last
        last = now
        if body.get("ready"):
            return now - started, restoring_s


def kill(worker: WorkerProcess) -> None:
    worker.signal(signal.SIGKILL)
    if worker.proc is not None:
        worker.proc.wait(30)


def measure(settings: Settings, store: str, cards: int, tail: int) -> RestoreRun:
    """One store at one size (see the module docstring)."""
    s = dataclasses.replace(fresh(settings, f"restore-{store}"), table_store=store)
    ensure_topics(s, [card_changelog_spec(s)])
    worker = WorkerProcess(s, 0, name=f"restore-{store}-{cards}")
    try:
        baseline_s, _ = timed_start(worker)
        worker.stop()
        asyncio.run(fill_card_changelog(s, 0, cards))
        shutil.rmtree(worker_datadir(s, 0), ignore_errors=True)
        cold_s, cold_restoring_s = timed_start(worker)
        kill(worker)
        asyncio.run(fill_card_changelog(s, cards, tail))
        warm_s, warm_restoring_s = timed_start(worker)
    finally:
        worker.stop()
        shutil.rmtree(worker_datadir(s, 0).parent, ignore_errors=True)
        discard(s)
    return RestoreRun(store, cards, round(baseline_s, 2), round(cold_s, 2),
                      round(cold_restoring_s, 2), round(warm_s, 2), round(warm_restoring_s, 2),
                      tail)
