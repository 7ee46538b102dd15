"""The supervisor's decisions, driven with fake worker processes, a fake clock and fake Kafka.

Replays what was measured under CPU contention: lagging workers killed as ``no_progress``,
replacements killed one second after a 25 s restore, SIGTERM counted as ``hung``, a worker
that refuses its configuration restarted forever.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from fraudstream.monitoring.supervisor_metrics import SupervisorMetrics
from fraudstream.settings import Settings
from fraudstream.workers.health import EXIT_CONFIG_ERROR, HealthPolicy
from fraudstream.workers.pool import WorkerStartError
from fraudstream.workers.supervisor import FailoverEvent, Supervisor, WorkerConfigError
from tests.unit.workers.test_progress import FakeKafka


class Clock:
    """``time`` for the supervisor module: monotonic time moves only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeProc:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


class FakeWorker:
    """A worker process whose answers the test sets."""

    def __init__(self, name: str, pid: int, standby: bool) -> None:
        self.name = name
        self.proc = FakeProc(pid)
        self.is_standby = standby
        self.health_body: dict[str, Any] | None = {"status": "ok"}
        self.ready_body: dict[str, Any] | None = {"ready": False, "pid": pid}
        self.signals: list[int] = []
        self.log = ""
        self.announced = False

    # what the supervisor calls
    def alive(self) -> bool:
        return self.proc.returncode is None

    def health(self, timeout: float = 1.0) -> dict[str, Any] | None:
        return self.health_body if self.alive() else None

    def readiness(self, timeout: float = 1.0) -> dict[str, Any] | None:
        return self.ready_body if self.alive() else None

    def standby_ready(self) -> bool:
        return self.is_standby and self.alive()

    def activate(self, index: int, instance_id: str | None) -> None:
        self.is_standby = False

    def signal(self, signum: int) -> None:
        self.signals.append(signum)
        if signum == signal.SIGKILL and self.alive():
            self.proc.returncode = -signal.SIGKILL

    def stop(self, timeout: float = 20.0) -> None:
        self.signal(signal.SIGKILL)

    def stopping(self) -> bool:
        return self.announced

    def forget(self) -> None:
        self.announced = False

    def error_line(self) -> str:
        return self.log.strip().splitlines()[-1]

    def log_tail(self, lines: int = 30) -> str:
        return self.log

    # what the test calls
    def set_ready(self, partitions: list[int]) -> None:
        self.ready_body = {"ready": True, "pid": self.proc.pid, "partitions": partitions}

    def set_restoring(self, remaining: int, done: int) -> None:
        self.ready_body = {"ready": False, "pid": self.proc.pid, "restoring": True,
                           "restore": {"remaining": remaining, "done": done}}


class TestSupervisor(Supervisor):
    """The real supervisor, with fake processes and no Kafka producer."""

    __test__ = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spawned: list[FakeWorker] = []
        self.published: list[FailoverEvent] = []

    def _spawn(self, *, index: int = 0, instance_id: str | None = None,
               standby: bool = False) -> Any:
        worker = FakeWorker(f"w{len(self.spawned) + 1}", 100 + len(self.spawned), standby)
        self.spawned.append(worker)
        return worker

    def _publish(self, event: FailoverEvent) -> None:
        self.published.append(event)

    def write_scrape_targets(self) -> None:
        pass

    def _check_slot_ports(self) -> None:
        pass  # real ports: tests/integration/test_supervise_overload.py


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("fraudstream.workers.supervisor.time", clock)
    return clock


@pytest.fixture
def kafka() -> FakeKafka:
    kafka = FakeKafka(Settings().topic_transactions)
    kafka.ends, kafka.committed = {0: 1000}, {0: 0}
    return kafka


def supervisor(tmp_path: Path, kafka: FakeKafka, standbys: int = 1,
               notices: list[str] | None = None) -> TestSupervisor:
    settings = Settings(state_dir=tmp_path, app_id="unit", partitions=1)
    sup = TestSupervisor(settings, workers=1, standbys=standbys,
                         policy=HealthPolicy(progress_interval_s=2.0),
                         metrics=SupervisorMetrics.create(),
                         notify=None if notices is None else notices.append)
    kafka.install(sup._progress)
    sup._progress.start = lambda: None  # type: ignore[method-assign]  # connected already
    sup.metrics.workers_desired.set(1)
    sup.start()
    return sup


def run_for(sup: Supervisor, clock: Clock, seconds: float, step: float = 0.5) -> None:
    end = clock.now + seconds
    while clock.now < end:
        clock.now += step
        sup.check_once()


def active(sup: TestSupervisor) -> FakeWorker:
    return sup.slots[0].worker  # type: ignore[return-value]


def metric(sup: Supervisor, name: str, **labels: str) -> float | None:
    return sup.metrics.registry.get_sample_value(name, labels)


def test_a_replacement_restoring_its_tables_is_kept_and_timed_from_readiness(
        tmp_path: Path, clock: Clock, kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka)
    first = active(sup)
    first.set_ready([0])
    run_for(sup, clock, 1.0)
    # The first worker stops committing with a backlog: replaced after the 20 s limit.
    run_for(sup, clock, 25.0)
    assert [e.reason for e in sup.events] == ["no_progress"]
    second = active(sup)
    assert second is not first
    # The replacement restores 30,000 records for 25 s: not ready, not killed.
    for step in range(50):
        second.set_restoring(30_000 - 600 * step, 600 * step)
        run_for(sup, clock, 0.5)
    assert sup.overview().restoring == {1: 600}
    assert metric(sup, "fraudstream_workers_restoring") == 1
    second.set_ready([0])
    run_for(sup, clock, 5.0)  # the old rule killed it here, one second after ready
    assert len(sup.events) == 1
    # Committing from now on, slowly: kept for good.
    for step in range(1, 30):
        kafka.committed = {0: 20 * step}
        run_for(sup, clock, 10.0)
    assert len(sup.events) == 1 and active(sup) is second


def test_lag_alone_never_replaces_a_worker_that_commits(tmp_path: Path, clock: Clock,
                                                        kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka)
    active(sup).set_ready([0])
    for step in range(1, 20):  # input outruns scoring: lag grows, one commit every 18 s
        kafka.ends = {0: 1000 + 5000 * step}
        kafka.committed = {0: 1000 * step}
        run_for(sup, clock, 18.0)
    assert sup.events == []
    assert sup.overview().lag == kafka.ends[0] - kafka.committed[0]
    assert metric(sup, "fraudstream_group_consumer_lag") == kafka.ends[0] - kafka.committed[0]
    assert "lag 77,000" in sup.overview().line()  # 96,000 sent, 19,000 committed


def test_a_partition_waiting_while_its_worker_commits_the_other_is_not_a_hang(
        tmp_path: Path, clock: Clock, kafka: FakeKafka, caplog: pytest.LogCaptureFixture) -> None:
    # Measured 2026-12-01 (2 workers, 4 partitions, 600 tx/s on a slow 2-core machine): each
    # worker served one partition's fetched chunk at a time, and the supervisor killed all
    # three workers in turn for one partition's 20 s without a commit.
    kafka.ends, kafka.committed = {0: 50_000, 1: 50_000}, {0: 0, 1: 0}
    sup = supervisor(tmp_path, kafka)
    active(sup).set_ready([0, 1])
    with caplog.at_level("WARNING"):
        for step in range(1, 10):  # partition 1 commits every 5 s; partition 0 waits 45 s
            kafka.committed = {0: 0, 1: 500 * step}
            run_for(sup, clock, 5.0)
    assert sup.events == []
    assert "partitions wait while their worker commits others" in caplog.text
    kafka.committed = {0: 5000, 1: 5000}
    run_for(sup, clock, 5.0)
    assert sup.events == []


def test_a_failover_storm_keeps_the_worker_raises_the_metric_and_says_so(
        tmp_path: Path, clock: Clock, kafka: FakeKafka) -> None:
    notices: list[str] = []
    sup = supervisor(tmp_path, kafka, notices=notices)
    for _ in range(3):  # every replacement gets ready but never commits
        active(sup).set_ready([0])
        run_for(sup, clock, 23.0)
    assert [e.reason for e in sup.events] == ["no_progress"] * 3
    kept = active(sup)
    kept.set_ready([0])
    run_for(sup, clock, 60.0)
    assert len(sup.events) == 3, "the fourth stall must not be answered with a failover"
    assert signal.SIGKILL not in kept.signals
    assert metric(sup, "fraudstream_failover_storm") == 1
    assert sup.overview().held == [1]
    assert "FAILOVER STORM: not replacing slot 1" in sup.overview().line()
    assert len(notices) == 1 and notices[0].startswith("FAILOVER STORM: slot 1 was replaced 3")
    kafka.committed = {0: 500}  # progress is back: the breaker closes
    run_for(sup, clock, 3.0)
    assert metric(sup, "fraudstream_failover_storm") == 0
    assert "storm over" in notices[-1]


def test_sigterm_is_a_drain_replaced_as_stopped(tmp_path: Path, clock: Clock,
                                                kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka)
    worker = active(sup)
    worker.set_ready([0])
    run_for(sup, clock, 1.0)
    worker.health_body = {"status": "stopping"}
    run_for(sup, clock, 0.5)
    worker.health_body = None  # its web server stops before the process does
    run_for(sup, clock, 5.0)
    assert sup.events == [] and signal.SIGKILL not in worker.signals
    worker.proc.returncode = 0
    run_for(sup, clock, 0.5)
    assert [e.reason for e in sup.events] == ["stopped"]
    assert metric(sup, "fraudstream_failovers_total", reason="stopped") == 1
    assert metric(sup, "fraudstream_failovers_total", reason="hung") == 0
    assert not sup.slots[0].storm.faults  # not a fault for the storm rule


def test_a_drain_that_takes_too_long_is_cut_short_as_stopped(tmp_path: Path, clock: Clock,
                                                             kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka)
    worker = active(sup)
    worker.set_ready([0])
    run_for(sup, clock, 1.0)
    worker.health_body = {"status": "stopping"}
    run_for(sup, clock, 29.0)
    assert sup.events == []
    run_for(sup, clock, 2.0)
    assert [e.reason for e in sup.events] == ["stopped"] and signal.SIGKILL in worker.signals


def test_a_worker_refusing_its_configuration_stops_the_supervisor_with_its_error(
        tmp_path: Path, clock: Clock, kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka, standbys=0)
    worker = active(sup)
    worker.log = ("INFO starting\nfraudstream worker: error: refusing to start: "
                  "FRAUDSTREAM_SIGNING_KEY is not set\n")
    worker.proc.returncode = EXIT_CONFIG_ERROR
    with pytest.raises(WorkerConfigError, match="FRAUDSTREAM_SIGNING_KEY is not set"):
        sup.run()
    assert isinstance(sup.fatal, WorkerConfigError)
    assert len(sup.spawned) == 1, "no replacement for a configuration error"


def test_a_standby_refusing_its_configuration_stops_the_supervisor(
        tmp_path: Path, clock: Clock, kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka, standbys=1)
    standby = sup.standbys[0]
    standby.log = "fraudstream worker: error: refusing to start: bad model\n"  # type: ignore[attr-defined]
    standby.proc.returncode = EXIT_CONFIG_ERROR  # type: ignore[union-attr]
    with pytest.raises(WorkerConfigError, match="bad model"):
        sup.check_once()


def test_a_crash_is_still_replaced_at_once(tmp_path: Path, clock: Clock,
                                           kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka)
    worker = active(sup)
    worker.set_ready([0])
    run_for(sup, clock, 1.0)
    worker.proc.returncode = -signal.SIGKILL
    run_for(sup, clock, 0.5)
    assert [e.reason for e in sup.events] == ["crashed"] and sup.events[0].from_standby


def test_start_up_waits_for_a_restore_that_progresses_beyond_the_timeout(
        tmp_path: Path, clock: Clock, kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka, standbys=0)
    worker = active(sup)
    began = clock.now

    def readiness(timeout: float = 1.0) -> dict[str, Any]:
        left = max(30_000 - int(150 * (clock.now - began)), 0)  # 150 records/s: 200 s
        if left:
            return {"ready": False, "pid": worker.proc.pid, "restoring": True,
                    "restore": {"remaining": left, "done": 30_000 - left}}
        return {"ready": True, "pid": worker.proc.pid, "partitions": [0]}

    worker.readiness = readiness  # type: ignore[method-assign]
    sup.wait_ready(timeout=120)
    assert clock.now - began >= 200 and sup.slots[0].ready and sup.events == []


def test_start_up_waits_for_readiness_after_a_restore_that_outlasted_the_timeout(
        tmp_path: Path, clock: Clock, kafka: FakeKafka) -> None:
    """Faust says the restore is over a moment before the worker is ready: the wait must not
    end in between because the timeout passed while the restore ran."""
    sup = supervisor(tmp_path, kafka, standbys=0)
    worker = active(sup)
    began = clock.now

    def readiness(timeout: float = 1.0) -> dict[str, Any]:
        elapsed = clock.now - began
        if elapsed < 128:
            left = 30_000 - int(200 * elapsed)
            return {"ready": False, "pid": worker.proc.pid, "restoring": True,
                    "restore": {"remaining": left, "done": 30_000 - left}}
        if elapsed < 131:
            return {"ready": False, "pid": worker.proc.pid, "restoring": False}
        return {"ready": True, "pid": worker.proc.pid, "partitions": [0]}

    worker.readiness = readiness  # type: ignore[method-assign]
    sup.wait_ready(timeout=120)
    assert clock.now - began >= 131 and sup.slots[0].ready and sup.events == []


def test_start_up_gives_up_on_a_restore_that_stopped_moving(
        tmp_path: Path, clock: Clock, kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka, standbys=0)
    active(sup).set_restoring(30_000, 0)
    began = clock.now
    with pytest.raises(WorkerStartError, match="not ready after 120s"):
        sup.wait_ready(timeout=120)
    assert clock.now - began < 130


def test_a_check_after_stop_replaces_nobody(tmp_path: Path, clock: Clock,
                                           kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka)
    active(sup).set_ready([0])
    run_for(sup, clock, 1.0)
    sup.request_stop()
    active(sup).proc.returncode = 0  # what stop() does to every worker
    run_for(sup, clock, 1.0)
    assert sup.events == [] and len(sup.spawned) == 2


def test_a_stop_announced_before_the_web_server_goes_is_a_drain(tmp_path: Path, clock: Clock,
                                                                kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka)
    worker = active(sup)
    worker.set_ready([0])
    run_for(sup, clock, 1.0)
    worker.announced, worker.health_body = True, None  # /health was never seen stopping
    run_for(sup, clock, 20.0)  # a slow exit under a starved CPU: still not hung
    assert sup.events == []
    worker.proc.returncode = 0
    run_for(sup, clock, 0.5)
    assert [e.reason for e in sup.events] == ["stopped"]


def test_a_worker_left_alone_is_not_judged_until_the_window_ends(tmp_path: Path, clock: Clock,
                                                                 kafka: FakeKafka) -> None:
    """The zombie chaos scenario's frozen worker: nobody kills it while it is left alone; it is
    watched afresh afterwards, and a worker still dead then is replaced."""
    sup = supervisor(tmp_path, kafka)
    worker = active(sup)
    worker.set_ready([0])
    run_for(sup, clock, 1.0)
    sup.leave_alone(1, 30.0)
    worker.health_body = worker.ready_body = None  # frozen: no answer at all
    run_for(sup, clock, 29.0)
    assert sup.events == [] and worker.signals == []
    worker.health_body = {"status": "ok"}
    worker.set_ready([0])
    run_for(sup, clock, 5.0)
    assert sup.events == [] and sup.slots[0].worker is worker
    sup.leave_alone(1, 5.0)
    worker.proc.returncode = -signal.SIGKILL
    run_for(sup, clock, 4.0)
    assert sup.events == []
    run_for(sup, clock, 2.0)
    assert [e.reason for e in sup.events] == ["crashed"]


def test_an_abandoned_supervisor_leaves_its_workers_and_its_lock(tmp_path: Path, clock: Clock,
                                                                 kafka: FakeKafka) -> None:
    """What a SIGKILLed supervisor leaves (the supervisor-kill chaos scenario): workers still
    running and unjudged, and a lock the next supervisor can take."""
    from fraudstream.workers import orphans

    sup = supervisor(tmp_path, kafka)
    worker = active(sup)
    worker.set_ready([0])
    run_for(sup, clock, 1.0)
    sup.abandon()
    worker.proc.returncode = -signal.SIGKILL
    run_for(sup, clock, 2.0)
    assert sup.events == [] and worker.signals == []
    orphans.claim(sup.settings).close()  # raised SupervisorBusy while the supervisor held it


def test_a_failover_that_fails_is_retried_and_never_stops_the_supervisor(
        tmp_path: Path, clock: Clock, kafka: FakeKafka) -> None:
    sup = supervisor(tmp_path, kafka, standbys=0)
    worker = active(sup)
    worker.set_ready([0])
    run_for(sup, clock, 1.0)
    worker.proc.returncode = -signal.SIGKILL
    spawn, failures = sup._spawn, [OSError("fork failed"), OSError("fork failed")]

    def flaky_spawn(**kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return spawn(**kwargs)

    sup._spawn = flaky_spawn  # type: ignore[method-assign]
    check, rounds = sup.check_once, []

    def three_rounds() -> None:
        clock.now += 0.5
        rounds.append(clock.now)
        check()
        if len(rounds) == 3:
            sup.request_stop()

    sup.check_once = three_rounds  # type: ignore[method-assign]
    sup.run()  # two failed rounds, then the failover goes through
    assert metric(sup, "fraudstream_supervisor_check_errors_total") == 2
    assert [e.reason for e in sup.events] == ["crashed"]
    assert sup.slots[0].worker is not worker and sup.slots[0].worker.alive()
