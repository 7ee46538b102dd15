"""The supervisor's rules for one worker: restoring, readiness clocks, drains, exits, storms."""

from __future__ import annotations

import signal
from typing import Any

from fraudstream.workers.health import (
    EXIT_CONFIG_ERROR,
    FailoverStorm,
    HealthPolicy,
    Probe,
    WorkerWatch,
    exit_reason,
)

POLICY = HealthPolicy(ready_timeout_s=90, restore_stall_s=60, hang_failures=2, hang_s=5,
                      drain_timeout_s=30, storm_failovers=3, storm_window_s=300)
PID = 4242
OK = {"status": "ok"}


def ready(**extra: Any) -> dict[str, Any]:
    return {"ready": True, "pid": PID, "partitions": [0, 1], **extra}


def restoring(remaining: int, done: int) -> dict[str, Any]:
    return {"ready": False, "pid": PID, "partitions": [], "restoring": True,
            "restore": {"remaining": remaining, "done": done}}


def probe(answer: dict[str, Any] | None, health: dict[str, Any] | None = OK) -> Probe:
    return Probe(alive=True, pid=PID, health=health, ready=answer)


def test_a_restore_that_progresses_is_never_cut_short() -> None:
    watch = WorkerWatch(activated_at=0.0)
    # 1,000 records every 50 s: slower than any fixed deadline would allow, but moving.
    for step in range(20):
        now = 50.0 * step
        verdict = watch.observe(probe(restoring(100_000 - 1000 * step, 1000 * step)), now,
                                POLICY)
        assert verdict is None, f"killed at {now}s while restoring"
    assert watch.restoring and not watch.ready and watch.restore_remaining == 81_000


def test_a_restore_without_progress_for_restore_stall_s_is_not_ready() -> None:
    watch = WorkerWatch(activated_at=0.0)
    assert watch.observe(probe(restoring(5000, 0)), 1.0, POLICY) is None
    assert watch.observe(probe(restoring(4000, 1000)), 10.0, POLICY) is None
    # No record restored since t=10: replaced only after 60 s without progress.
    assert watch.observe(probe(restoring(4000, 1000)), 69.0, POLICY) is None
    assert watch.observe(probe(restoring(4000, 1000)), 70.5, POLICY) == "not_ready"


def test_the_ready_timeout_restarts_when_a_long_restore_ends() -> None:
    watch = WorkerWatch(activated_at=0.0)
    for step in range(30):  # 150 s of restore, longer than the 90 s ready timeout
        assert watch.observe(probe(restoring(30_000 - 1000 * step, 1000 * step)), 5.0 * step,
                             POLICY) is None
    assert watch.observe(probe({"ready": False, "pid": PID}), 150.0, POLICY) is None
    assert watch.observe(probe({"ready": False, "pid": PID}), 239.0, POLICY) is None
    assert watch.observe(probe({"ready": False, "pid": PID}), 240.5, POLICY) == "not_ready"


def test_readiness_is_stamped_when_it_happens_not_at_activation() -> None:
    watch = WorkerWatch(activated_at=0.0)
    watch.observe(probe(restoring(100, 0)), 1.0, POLICY)
    watch.observe(probe(ready()), 26.0, POLICY)
    assert watch.ready and watch.ready_since == 26.0 and watch.partitions == [0, 1]
    watch.observe(probe(ready()), 27.0, POLICY)
    assert watch.ready_since == 26.0  # still the moment it became ready


def test_ready_true_but_restoring_is_not_ready() -> None:
    watch = WorkerWatch(activated_at=0.0)
    watch.observe(probe(ready(restoring=True, restore={"remaining": 10, "done": 0})), 1.0,
                  POLICY)
    assert not watch.ready and watch.restoring


def test_a_stale_process_on_the_port_does_not_pass_for_this_worker() -> None:
    watch = WorkerWatch(activated_at=0.0)
    watch.observe(probe({"ready": True, "pid": PID + 1, "partitions": [0]}), 1.0, POLICY)
    assert not watch.ready


def test_a_hang_is_failed_probes_for_hang_s_of_a_worker_that_was_healthy() -> None:
    watch = WorkerWatch(activated_at=0.0)
    assert watch.observe(probe(None, health=None), 1.0, POLICY) is None  # still starting
    assert watch.observe(probe(None, health=None), 6.0, POLICY) is None
    watch.observe(probe(ready()), 7.0, POLICY)
    assert watch.observe(probe(None, health=None), 8.0, POLICY) is None
    assert watch.observe(probe(None, health=None), 11.5, POLICY) is None
    assert watch.observe(probe(None, health=None), 12.0, POLICY) == "hung"


def test_a_loop_busy_with_a_long_batch_is_slow_not_hung() -> None:
    watch = WorkerWatch(activated_at=0.0)
    watch.observe(probe(ready()), 1.0, POLICY)
    # A starved CPU: each batch blocks the loop ~2 s, so probes fail two or three in a row.
    for cycle in range(20):
        start = 1.0 + 3.0 * cycle
        assert watch.observe(probe(None, health=None), start + 1.0, POLICY) is None
        assert watch.observe(probe(None, health=None), start + 2.0, POLICY) is None
        assert watch.observe(probe(ready()), start + 3.0, POLICY) is None


def test_a_worker_missing_probes_while_busy_still_counts_as_serving() -> None:
    """The healthy-workers gauge (FraudstreamWorkersBelowDesired) must not read overload as a
    worker missing: one that answered ready and then missed probes for less than hang_s is
    serving; one silent for hang_s, or that said it is not ready, or is stopping, is not."""
    watch = WorkerWatch(activated_at=0.0)
    assert not watch.serving(0.5, POLICY)
    watch.observe(probe(None, health=None), 1.0, POLICY)
    assert not watch.serving(1.0, POLICY), "never ready yet"
    watch.observe(probe(ready()), 2.0, POLICY)
    assert watch.serving(2.0, POLICY)
    watch.observe(probe(None, health=None), 3.0, POLICY)
    watch.observe(probe(None, health=None), 4.0, POLICY)
    assert not watch.ready and watch.serving(6.9, POLICY)
    assert not watch.serving(7.0, POLICY), "silent for hang_s"
    watch.observe(probe(ready()), 7.5, POLICY)
    watch.observe(probe({"ready": False, "pid": PID, "partitions": []}), 8.0, POLICY)
    assert not watch.serving(8.0, POLICY), "it said it is not ready"
    watch.observe(probe(ready()), 9.0, POLICY)
    watch.observe(probe(ready(), health={"status": "stopping"}), 10.0, POLICY)
    assert not watch.serving(10.0, POLICY), "draining"


def test_a_stopping_worker_is_drained_not_hung() -> None:
    watch = WorkerWatch(activated_at=0.0)
    watch.observe(probe(ready()), 1.0, POLICY)
    assert watch.observe(probe(ready(), health={"status": "stopping"}), 2.0, POLICY) is None
    assert not watch.ready
    # Its web server goes away before the process exits: not a hang.
    for now in (2.5, 3.0, 3.5, 10.0):
        assert watch.observe(probe(None, health=None), now, POLICY) is None
    assert watch.observe(Probe(alive=False, pid=PID, exit_code=0), 11.0, POLICY) == "stopped"


def test_a_drain_that_outlasts_its_time_is_still_a_stop() -> None:
    watch = WorkerWatch(activated_at=0.0)
    watch.observe(probe(ready()), 1.0, POLICY)
    watch.observe(probe(ready(), health={"status": "stopping"}), 2.0, POLICY)
    assert watch.observe(probe(None, health=None), 31.0, POLICY) is None
    assert watch.observe(probe(None, health=None), 32.5, POLICY) == "stopped"


def test_exit_status_decides_the_reason() -> None:
    assert exit_reason(EXIT_CONFIG_ERROR, draining=False) == "config_error"
    assert exit_reason(0, draining=False) == "stopped"
    assert exit_reason(-signal.SIGTERM, draining=False) == "stopped"
    assert exit_reason(-signal.SIGKILL, draining=False) == "crashed"
    assert exit_reason(70, draining=False) == "crashed"  # could not write to Kafka
    assert exit_reason(70, draining=True) == "stopped"


def test_the_storm_breaker_opens_on_the_third_fault_in_the_window() -> None:
    storm = FailoverStorm()
    storm.record("no_progress", 0.0)
    storm.record("stopped", 10.0)  # a deploy is not a fault
    storm.record("not_ready", 100.0)
    assert not storm.holds(200.0, POLICY)
    storm.record("no_progress", 250.0)
    assert storm.holds(260.0, POLICY) and storm.open_since == 260.0
    assert storm.holds(900.0, POLICY)  # held until progress is back, not until a timer ends
    storm.close()
    assert not storm.holds(901.0, POLICY)


def test_faults_older_than_the_window_do_not_open_the_breaker() -> None:
    storm = FailoverStorm()
    for t in (0.0, 100.0, 400.0):  # the first left the 300 s window before the third
        storm.record("no_progress", t)
    assert not storm.holds(401.0, POLICY)
