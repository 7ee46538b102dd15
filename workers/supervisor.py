"""The supervisor: N active scoring workers, K warm standbys, health checks and failover.

Each active worker owns a *slot*: a web port and a static group membership id (KIP-345). When
a worker crashes, hangs, never becomes ready or stops committing while it has a backlog, the
supervisor kills it and hands its slot to a warm standby (imports done, model verified). The
standby joins with the dead worker's membership id, so the coordinator gives it the same
partitions at once: no session timeout to wait for and no rebalance of the other workers.

What counts as a failure is decided in ``workers.health``: a slow, lagging or restoring worker
is kept, a worker stopping after SIGTERM is drained, replacements that do not bring progress
back open a failover-storm breaker, and a worker that refuses its configuration stops the
supervisor (``WorkerConfigError``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from fraudstream import contracts
from fraudstream.monitoring.supervisor_metrics import SupervisorMetrics
from fraudstream.settings import Settings
from fraudstream.workers import orphans
from fraudstream.workers.health import (
    EXIT_CONFIG_ERROR,
    FailoverStorm,
    HealthPolicy,
    Probe,
    Verdict,
    WorkerWatch,
)
from fraudstream.workers.pool import WorkerProcess, WorkerStartError, check_slot_ports
from fraudstream.workers.progress import GroupProgress

logger = logging.getLogger(__name__)


@dataclass
class CrashLoopGuard:
    """Backs off replacing processes that keep dying right after they start.

    A worker that cannot start (a model it refuses, a missing topic) would otherwise be
    replaced every half second forever. After ``free`` quick deaths in a row, each further
    replacement waits twice as long as the previous one, up to ``max_delay_s``.
    """

    quick_s: float = 15.0
    free: int = 2
    max_delay_s: float = 60.0
    quick_deaths: int = 0
    not_before: float = 0.0

    def died(self, uptime_s: float, now: float) -> None:
        """Note a death after ``uptime_s`` seconds of life."""
        self.quick_deaths = self.quick_deaths + 1 if uptime_s < self.quick_s else 0
        extra = self.quick_deaths - self.free
        delay = min(2.0 ** extra, self.max_delay_s) if extra > 0 else 0.0
        self.not_before = now + delay
        if delay:
            logger.error("crash loop: %d quick deaths in a row, next start in %.0fs (see the "
                         "worker logs in the state dir)", self.quick_deaths, delay)

    def may_start(self, now: float) -> bool:
        return now >= self.not_before


class WorkerConfigError(WorkerStartError):
    """A worker refused to start for a configuration error: restarting it cannot help."""


@dataclass
class Slot:
    """One active worker position: fixed web port and membership id, changing process."""

    index: int
    instance_id: str
    worker: WorkerProcess
    watch: WorkerWatch
    restarts: CrashLoopGuard = field(default_factory=lambda: CrashLoopGuard())
    storm: FailoverStorm = field(default_factory=FailoverStorm)
    #: Until then (monotonic), the supervisor neither probes nor judges this slot's worker
    #: (``Supervisor.leave_alone``).
    unwatched_until: float = 0.0
    #: Partitions last reported as waiting while this slot's worker commits others.
    starved: frozenset[int] = frozenset()

    @property
    def ready(self) -> bool:
        return self.watch.ready

    @property
    def partitions(self) -> list[int]:
        return self.watch.partitions

    @property
    def failures(self) -> int:
        return self.watch.failures


@dataclass(frozen=True)
class FailoverEvent:
    slot: int
    reason: contracts.FailoverReason
    old_pid: int | None
    new_pid: int | None
    from_standby: bool
    at: str

    def to_json(self) -> bytes:
        body: contracts.FailoverEvent = {
            "event": "failover", "slot": self.slot, "reason": self.reason,
            "old_pid": self.old_pid, "new_pid": self.new_pid, "from_standby": self.from_standby,
            "at": self.at}
        return json.dumps(body).encode()


@dataclass(frozen=True)
class Overview:
    """What the supervisor sees now, for a live line: lag, restores, held slots."""

    #: Records of the transactions topic not yet committed (None before the first check).
    lag: int | None
    #: Slot index -> records its worker still has to restore (None when not known yet).
    restoring: dict[int, int | None]
    #: Slots whose worker is kept although it fails: a failover storm.
    held: list[int]
    failovers: int

    def line(self) -> str:
        """`` | lag N | restoring ... | FAILOVER STORM ...``: empty parts are left out."""
        parts = [f"lag {self.lag:,}" if self.lag is not None else "lag ?"]
        if self.restoring:
            parts.append("restoring " + ", ".join(
                f"slot {i} ({'?' if n is None else f'{n:,}'} left)"
                for i, n in sorted(self.restoring.items())))
        if self.failovers:
            parts.append(f"failovers {self.failovers}")
        if self.held:
            parts.append("FAILOVER STORM: not replacing slot "
                         + ", ".join(map(str, self.held)))
        return " | ".join(parts)


class Supervisor:
    """Keeps ``workers`` active scoring workers and ``standbys`` warm standbys running."""

    def __init__(self, settings: Settings, workers: int, standbys: int,
                 policy: HealthPolicy | None = None,
                 metrics: SupervisorMetrics | None = None,
                 on_failover: Callable[[FailoverEvent], None] | None = None,
                 notify: Callable[[str], None] | None = None) -> None:
        """``notify`` receives one line for a person when a failover storm starts or ends."""
        if workers < 1:
            raise ValueError("the supervisor needs at least one active worker")
        self.settings = settings
        self.n_workers = workers
        self.n_standbys = standbys
        self.policy = policy or HealthPolicy()
        self.metrics = metrics or SupervisorMetrics.create()
        self.on_failover = on_failover
        self.notify = notify
        self.slots: list[Slot] = []
        self.standbys: list[WorkerProcess] = []
        self.events: list[FailoverEvent] = []
        #: The error that stopped ``run`` (a worker's configuration error), for the CLI.
        self.fatal: WorkerConfigError | None = None
        #: Workers a dead supervisor had left running, which ``start`` killed.
        self.orphans_stopped: list[int] = []
        self._spawned = 0
        self._progress = GroupProgress(settings, settings.app_id,
                                       settings.topic_transactions)
        self._progress_at = 0.0
        self._progress_read = False
        self._producer: Any = None
        self._metrics_server: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._standby_restarts = CrashLoopGuard()
        self._started_at: dict[str, float] = {}
        self._claim: IO[str] | None = None
        self._probes = ThreadPoolExecutor(max_workers=max(workers, 2),
                                          thread_name_prefix="probe")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the active workers and the standbys (returns without waiting for them).

        Raises ``SupervisorBusy`` when another supervisor runs this app from the same state
        dir, ``SlotPortTaken`` when another program holds a slot's web port; stops the workers
        a dead supervisor left running first (``workers.orphans``).
        """
        self._claim = orphans.claim(self.settings)
        left = self.orphans_stopped = orphans.stop_orphans(self.settings)
        if left and self.notify is not None:
            self.notify(f"stopped {len(left)} worker(s) left running by a previous supervisor "
                        f"(pids {', '.join(map(str, left))})")
        self._check_slot_ports()
        self.metrics.workers_desired.set(self.n_workers)
        self.metrics.standbys_desired.set(self.n_standbys)
        for index in range(1, self.n_workers + 1):
            worker = self._spawn(index=index, instance_id=self._instance_id(index))
            self.slots.append(Slot(index, self._instance_id(index), worker,
                                   WorkerWatch(time.monotonic())))
        self._refill_standbys()
        self._progress.start()
        self.write_scrape_targets()

    def _check_slot_ports(self) -> None:
        """Refuse to start (``SlotPortTaken``) when a slot's web port stays taken: no worker of
        this app runs now (their orphans were just stopped), so another program holds it."""
        check_slot_ports(self.settings, self.n_workers)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until all active workers are ready, all partitions assigned, standbys warm.

        ``timeout`` is extended while a worker's table restore progresses (a large state may
        take longer to read back; one that stops moving is not waited for beyond
        ``policy.restore_stall_s``). Raises ``WorkerConfigError`` at once when a worker
        refuses its configuration.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < self._patience(deadline):
            self.check_once()
            assigned = sum(len(s.partitions) for s in self.slots if s.ready)
            warm = sum(1 for w in self.standbys if w.standby_ready())
            if (all(s.ready for s in self.slots) and assigned >= self.settings.partitions
                    and warm >= self.n_standbys):
                return
            time.sleep(0.3)
        tails = "\n".join(f"--- {s.worker.name}\n{s.worker.log_tail(10)}" for s in self.slots)
        raise WorkerStartError(f"supervised workers not ready after {timeout:.0f}s\n{tails}")

    def _patience(self, deadline: float) -> float:
        """Until when ``wait_ready`` waits: ``deadline``, or longer while a worker's restore
        moves, and once a restore ended the time any worker has to get ready after it (the
        end of a long restore is not the end of the start-up: measured, a worker that had
        restored for 128 s was ready a second after the fixed timeout had given up)."""
        limits = [deadline]
        for slot in self.slots:
            watch = slot.watch
            if watch.restoring:
                limits.append(watch.waiting_since + self.policy.restore_stall_s)
            elif not watch.ready and watch.waiting_since > watch.activated_at:
                limits.append(watch.waiting_since + self.policy.ready_timeout_s)
        return max(limits)

    def run(self) -> None:
        """Check health until ``stop`` is called (from another thread or a signal handler).

        A worker's configuration error ends the loop: it is kept in ``fatal`` and raised. Any
        other error (a failover that could not start a process, a worker that would not die in
        time) is logged and counted, and the next round judges the slots again, so a failed
        failover is retried: the supervisor's own errors never stop it.
        """
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self.check_once()
                except WorkerConfigError:
                    raise
                except Exception as exc:
                    self.metrics.check_errors.inc()
                    logger.exception("supervisor round failed, retrying error=%r", exc)
                self._stop.wait(max(self.policy.interval_s - (time.monotonic() - started),
                                    0.05))
        except WorkerConfigError as exc:
            self.fatal = exc
            self._stop.set()
            raise

    def run_in_thread(self) -> threading.Thread:
        """``run`` in a daemon thread; a fatal error ends up in ``fatal``, not on stderr."""

        def body() -> None:
            with contextlib.suppress(WorkerConfigError):  # kept in self.fatal for the caller
                self.run()

        thread = threading.Thread(target=body, name="supervisor", daemon=True)
        thread.start()
        return thread

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Stop checking, then stop every worker and standby (SIGTERM, then SIGKILL)."""
        self._stop.set()
        with self._lock:
            everyone = [s.worker for s in self.slots] + self.standbys
            for w in everyone:
                w.signal(signal.SIGTERM)
            for w in everyone:
                w.stop()
                if w.proc is not None:
                    orphans.unlisted(self.settings, w.proc.pid)
        self._progress.stop()
        self._probes.shutdown(wait=False)
        from fraudstream.workers.pool import remove_targets

        for name in ("workers", "supervisor"):
            remove_targets(self.settings, name)
        if self._metrics_server is not None:
            # shutdown() alone leaves the port bound: the next supervisor could not serve.
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        if self._producer is not None:
            self._producer.close(timeout=2)
        if self._claim is not None:
            self._claim.close()
            self._claim = None

    def abandon(self) -> None:
        """Stop supervising without stopping anything, as the supervisor's death would: the
        checks end, and the lock and the metrics port are released (the kernel does that for
        a dead process); the workers keep running, listed for the next supervisor to find.
        For chaos runs (``supervisor-kill``)."""
        self._stop.set()
        with self._lock:
            self._progress.stop()
            self._probes.shutdown(wait=False)
            if self._metrics_server is not None:
                self._metrics_server.shutdown()
                self._metrics_server.server_close()
                self._metrics_server = None
            if self._claim is not None:
                self._claim.close()
                self._claim = None

    # -- health ------------------------------------------------------------------------------
    def check_once(self) -> None:
        """One round of checks: liveness, readiness and progress of every active worker."""
        with self._lock:
            if self._stop.is_set():
                # A round that waited for the lock while stop() stopped the workers must not
                # take their exits for failures and start new ones.
                return
            now = time.monotonic()
            probes = {s.index: self._probes.submit(self._probe, s.worker) for s in self.slots
                      if not self._left_alone(s, now)}
            for slot in list(self.slots):
                if slot.index not in probes:
                    continue
                reason = slot.watch.observe(probes[slot.index].result(), now, self.policy)
                if reason is not None:
                    self._replace(slot, reason, now)
            if now - self._progress_at >= self.policy.progress_interval_s:
                self._progress_at = now
                self._check_progress(now)
            self._refill_standbys()
            healthy = sum(1 for s in self.slots if s.watch.serving(now, self.policy)
                          and s.worker.alive())
            self.metrics.workers_healthy.set(healthy)
            self.metrics.standbys_ready.set(sum(1 for w in self.standbys if w.standby_ready()))
            self.metrics.workers_restoring.set(sum(1 for s in self.slots if s.watch.restoring))
            self.metrics.failover_storm.set(sum(1 for s in self.slots
                                                if s.storm.open_since is not None))

    def leave_alone(self, index: int, seconds: float) -> None:
        """Neither probe nor judge slot ``index``'s worker for ``seconds``; then watch it
        afresh. For chaos runs: a worker frozen with nobody to kill it (a supervisor that
        lost track of it), whose partitions the group moves and which later wakes up."""
        slot = next((s for s in self.slots if s.index == index), None)
        if slot is None:
            raise KeyError(f"no slot {index}; slots are {[s.index for s in self.slots]}")
        slot.unwatched_until = time.monotonic() + seconds
        logger.warning("leaving slot=%d alone for %.0fs", index, seconds)

    def _left_alone(self, slot: Slot, now: float) -> bool:
        if not slot.unwatched_until:
            return False
        if now < slot.unwatched_until:
            return True
        slot.unwatched_until = 0.0
        slot.watch = WorkerWatch(now)
        logger.warning("watching slot=%d again", slot.index)
        return False

    def _probe(self, worker: WorkerProcess) -> Probe:
        pid = worker.proc.pid if worker.proc is not None else None
        if not worker.alive():
            code = worker.proc.poll() if worker.proc is not None else None
            return Probe(alive=False, pid=pid, exit_code=code)
        health = worker.health(self.policy.probe_timeout_s)
        ready = worker.readiness(self.policy.probe_timeout_s) if health is not None else None
        return Probe(alive=True, pid=pid, health=health, ready=ready,
                     announced_stop=worker.stopping())

    def _replace(self, slot: Slot, reason: Verdict, now: float) -> None:
        """Act on a verdict: stop on a config error, hold during a storm, else fail over."""
        if reason == "config_error":
            raise WorkerConfigError(f"worker {slot.worker.name} refused to start: "
                                    f"{slot.worker.error_line()}")
        if reason in ("hung", "not_ready", "no_progress") and slot.storm.holds(now, self.policy):
            if slot.storm.open_since == now:
                pid = slot.worker.proc.pid if slot.worker.proc is not None else None
                logger.error("failover storm slot=%d reason=%s failovers=%d window_s=%.0f "
                             "pid=%s", slot.index, reason, len(slot.storm.faults),
                             self.policy.storm_window_s, pid)
                self._say(f"FAILOVER STORM: slot {slot.index} was replaced "
                          f"{len(slot.storm.faults)} times in {self.policy.storm_window_s:.0f}s "
                          f"without progress coming back; keeping worker pid {pid} ({reason}) "
                          "instead of replacing it again. Look for overload or a common cause "
                          "(see FraudstreamFailoverStorm in monitoring/runbook.md).")
            return
        if slot.restarts.may_start(now):
            self.failover(slot, reason)

    def _check_progress(self, now: float) -> None:
        try:
            self._progress.refresh(now)
            self._progress_read = True
        except Exception as exc:  # the check must never take the supervisor down
            self.metrics.kafka_errors.inc()
            logger.warning("progress check failed error=%r", exc)
            return
        self.metrics.consumer_lag.set(self._progress.total_lag)
        for slot in list(self.slots):
            watch = slot.watch
            if (not watch.ready or watch.draining_since is not None
                    or slot.unwatched_until > now):
                continue
            opened = slot.storm.open_since
            if opened is not None and self._progress.moved_since(watch.partitions, opened):
                logger.warning("failover storm over slot=%d: its partitions commit again",
                               slot.index)
                slot.storm.close()
                self._say(f"failover storm over: slot {slot.index} commits again; its worker "
                          "will be replaced again if it fails")
            # Counted from readiness: a replacement that spent its first seconds restoring
            # has had no chance to commit yet.
            timeout, batches = self.policy.progress_timeout_s, self.policy.stall_batches
            stalled = self._progress.stalled(watch.partitions, now, timeout,
                                             not_before=watch.ready_since, batches=batches)
            starved = frozenset(self._progress.starved(
                watch.partitions, now, timeout, not_before=watch.ready_since, batches=batches))
            if starved - slot.starved:
                logger.warning("partitions wait while their worker commits others (overload, "
                               "not a hang) slot=%d partitions=%s lag=%s", slot.index,
                               sorted(starved),
                               {p: self._progress.partitions[p].lag for p in starved})
            slot.starved = starved
            if stalled and slot.storm.open_since is None:  # a held worker is said once
                logger.warning("no progress slot=%d partitions=%s lag=%s", slot.index, stalled,
                               {p: self._progress.partitions[p].lag for p in stalled})
                self._replace(slot, "no_progress", now)

    def _say(self, line: str) -> None:
        if self.notify is not None:
            self.notify(line)

    def overview(self) -> Overview:
        """Lag, restores and held slots, as of the last checks (for the demo's live line).

        Without the lock: a check round holds it for up to a probe timeout, and a live line
        must not wait for that; each value read is a whole one.
        """
        slots = list(self.slots)
        return Overview(
            lag=self._progress.total_lag if self._progress_read else None,
            restoring={s.index: s.watch.restore_remaining for s in slots if s.watch.restoring},
            held=[s.index for s in slots if s.storm.open_since is not None],
            failovers=len(self.events))

    # -- failover ----------------------------------------------------------------------------
    def failover(self, slot: Slot, reason: contracts.FailoverReason) -> FailoverEvent:
        """Kill the slot's worker and give the slot to a warm standby (or a fresh worker)."""
        old = slot.worker
        old_pid = old.proc.pid if old.proc is not None else None
        now = time.monotonic()
        slot.restarts.died(now - slot.watch.activated_at, now)
        slot.storm.record(reason, now)
        logger.warning("failover slot=%d reason=%s pid=%s", slot.index, reason, old_pid)
        old.signal(signal.SIGKILL)
        if old.proc is not None:
            old.proc.wait(10)
            orphans.unlisted(self.settings, old.proc.pid)
        old.forget()
        standby = next((w for w in self.standbys if w.standby_ready()), None)
        if standby is not None:
            self.standbys.remove(standby)
            standby.activate(slot.index, slot.instance_id)
            new = standby
        else:
            new = self._spawn(index=slot.index, instance_id=slot.instance_id)
        slot.worker, slot.watch = new, WorkerWatch(time.monotonic())
        self._refill_standbys()
        event = FailoverEvent(slot.index, reason, old_pid,
                              new.proc.pid if new.proc is not None else None,
                              standby is not None,
                              datetime.now(UTC).isoformat(timespec="milliseconds"))
        self.events.append(event)
        self.metrics.failovers.labels(reason).inc()
        self._publish(event)
        if self.on_failover is not None:
            self.on_failover(event)
        return event

    def _refill_standbys(self) -> None:
        now = time.monotonic()
        for dead in [w for w in self.standbys if not w.alive()]:
            if dead.proc is not None and dead.proc.poll() == EXIT_CONFIG_ERROR:
                raise WorkerConfigError(f"standby {dead.name} refused to start: "
                                        f"{dead.error_line()}")
            self._standby_restarts.died(now - self._started_at.pop(dead.name, now), now)
        self.standbys = [w for w in self.standbys if w.alive()]
        while len(self.standbys) < self.n_standbys and self._standby_restarts.may_start(now):
            standby = self._spawn(standby=True)
            self._started_at[standby.name] = now
            self.standbys.append(standby)

    def _publish(self, event: FailoverEvent) -> None:
        """Failover events go to the events topic (best effort: the log has them too)."""
        try:
            if self._producer is None:
                from fraudstream import kafka_clients

                self._producer = kafka_clients.sync_producer(
                    self.settings, client_id="fraudstream-supervisor", linger_ms=0)
            self._producer.send(self.settings.topic_events, event.to_json())
        except Exception as exc:
            self.metrics.kafka_errors.inc()
            logger.warning("could not publish failover event error=%r", exc)

    # -- processes ---------------------------------------------------------------------------
    def _instance_id(self, index: int) -> str:
        return f"{self.settings.app_id}-slot-{index}"

    def _spawn(self, *, index: int = 0, instance_id: str | None = None,
               standby: bool = False) -> WorkerProcess:
        self._spawned += 1
        name = f"{self.settings.app_id}-{'standby' if standby else 'worker'}-{self._spawned}"
        ready_file = (self.settings.state_dir / "supervisor" / f"{name}.ready"
                      if standby else None)
        worker = WorkerProcess(self.settings, index, instance_id=instance_id,
                               standby_file=ready_file, name=name)
        worker.start()
        if worker.proc is not None:
            orphans.listed(self.settings, worker.proc.pid)
        return worker

    def serve_metrics(self, required: bool = True) -> Any:
        """Serve /metrics on FRAUDSTREAM_SUPERVISOR_PORT and list it for the local Prometheus.

        Returns the HTTP server, which ``stop()`` closes. A taken port raises ``OSError`` when
        ``required``, else it is logged and None returned.
        """
        from prometheus_client import start_http_server

        from fraudstream.workers.pool import write_targets

        s = self.settings
        try:
            server, _thread = start_http_server(s.supervisor_port, addr=s.bind_host,
                                                registry=self.metrics.registry)
        except OSError as exc:
            if required:
                raise
            logger.warning("supervisor metrics not served port=%s error=%r", s.supervisor_port,
                           exc)
            return None
        self._metrics_server = server
        write_targets(s, "supervisor", [f"{s.bind_host}:{s.supervisor_port}"],
                      component="supervisor")
        return server

    def write_scrape_targets(self) -> None:
        """Tell the local Prometheus (file_sd) where the workers' /metrics are."""
        from fraudstream.workers.pool import write_targets

        write_targets(self.settings, "workers",
                      [f"{self.settings.bind_host}:{self.settings.worker_web_port + s.index}"
                       for s in self.slots], component="worker")

    def status(self) -> list[dict[str, object]]:
        """One row per slot and standby, for the CLI and the tests."""
        rows: list[dict[str, object]] = [
            {"slot": s.index, "pid": s.worker.proc.pid if s.worker.proc else None,
             "ready": s.ready, "partitions": s.partitions, "failures": s.failures,
             "restoring": s.watch.restoring, "held": s.storm.open_since is not None}
            for s in self.slots]
        rows += [{"standby": w.name, "pid": w.proc.pid if w.proc else None,
                  "warm": w.standby_ready()} for w in self.standbys]
        return rows
