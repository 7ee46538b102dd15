"""How the supervisor judges one worker: the rules alone, free of processes, HTTP and Kafka.

Overload is not a fault (DESIGN.md, invariant 8). A worker is replaced when it is dead, hung,
stuck before it ever got ready, or ready with a backlog it does not commit; never because it is
slow, restoring its tables or draining after a SIGTERM. The clocks behind these rules start
when the worker could first act on them (readiness, the last restore progress), not at the
failover: a replacement that restored its tables for 25 s was once killed one second after it
got ready, because its 20 s progress grace had started at the failover.
"""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from fraudstream.contracts import FailoverReason

#: What a check concludes: replace the worker for a reason (the failover event's), or stop the
#: supervisor because the worker cannot start with this configuration.
Verdict = FailoverReason | Literal["config_error"]

#: Exit status of a worker that refuses to start for a configuration error (sysexits.h
#: EX_CONFIG). The supervisor stops at once on it instead of restarting the worker forever.
EXIT_CONFIG_ERROR = 78

#: Exit statuses of a worker that stopped because it was told to (SIGTERM/SIGINT handled, or
#: not): a drain, as in a deploy, not a fault.
STOPPED_EXITS = frozenset({0, 130, 128 + signal.SIGTERM, -signal.SIGTERM, -signal.SIGINT})

#: Reasons a worker is replaced that say nothing bad about it (not counted as faults).
NOT_FAULTS = frozenset({"stopped"})


@dataclass(frozen=True)
class HealthPolicy:
    """How often workers are checked and when a check failure means replacement."""

    interval_s: float = 0.5
    probe_timeout_s: float = 1.0
    #: Consecutive failed liveness probes (of a worker that was healthy) that mean "hung",
    #: once the last answer is also ``hang_s`` old: a loop busy with one large batch on a
    #: starved CPU misses a 1 s probe or two, and is slow, not hung.
    hang_failures: int = 2
    hang_s: float = 5.0
    #: Time a worker that is not restoring has to become ready, from its activation or from
    #: the end of its last restore.
    ready_timeout_s: float = 90.0
    #: A restoring worker is replaced only when its restore made no progress for this long:
    #: the limit follows the measured restore, whatever the size of the state.
    restore_stall_s: float = 60.0
    #: A ready worker with a backlog is stuck when it has not committed for the longer of
    #: this and ``stall_batches`` of its partition's recent commit gaps (its batch times).
    progress_timeout_s: float = 20.0
    stall_batches: int = 4
    progress_interval_s: float = 2.0
    #: A worker that said it is stopping (SIGTERM) gets this long to finish its batches.
    drain_timeout_s: float = 30.0
    #: Failovers of one slot within ``storm_window_s`` after which the supervisor stops
    #: replacing that slot's worker (the replacements did not bring progress back).
    storm_failovers: int = 3
    storm_window_s: float = 300.0


@dataclass(frozen=True)
class Probe:
    """What one health check saw of a worker process."""

    alive: bool
    pid: int | None = None
    exit_code: int | None = None
    #: The /health body, None when it did not answer in time.
    health: dict[str, Any] | None = None
    #: The /ready body (also when it answered 503), None when it did not answer.
    ready: dict[str, Any] | None = None
    #: The worker announced its stop (SIGTERM) before its web server went away.
    announced_stop: bool = False

    @property
    def live(self) -> bool:
        return self.health is not None

    @property
    def stopping(self) -> bool:
        return self.announced_stop or (self.health is not None
                                       and self.health.get("status") == "stopping")


def exit_reason(exit_code: int | None, draining: bool) -> Verdict:
    """Why a worker process that has exited should be replaced: its exit status decides."""
    if exit_code == EXIT_CONFIG_ERROR:
        return "config_error"
    if draining or exit_code in STOPPED_EXITS:
        return "stopped"
    return "crashed"


@dataclass
class WorkerWatch:
    """The supervisor's memory of one activated worker, updated by ``observe``."""

    activated_at: float
    healthy_once: bool = False
    failures: int = 0
    ready: bool = False
    #: When the worker last became ready: the progress clock starts here, not at activation.
    ready_since: float | None = None
    partitions: list[int] = field(default_factory=list)
    restoring: bool = False
    restore_remaining: int | None = None
    restore_done: int | None = None
    #: Since when the worker has been waiting without progress toward readiness: activation,
    #: then each restored batch of records, then the end of the restore.
    waiting_since: float = 0.0
    draining_since: float | None = None
    #: When /health last answered (activation until it first does).
    live_at: float = 0.0

    def __post_init__(self) -> None:
        self.waiting_since = self.waiting_since or self.activated_at
        self.live_at = self.live_at or self.activated_at

    def serving(self, now: float, policy: HealthPolicy) -> bool:
        """Ready, or ready until it missed a probe or two that a busy loop on a starved CPU
        misses (no answer for less than ``policy.hang_s``): what the healthy-workers gauge
        counts, so that overload does not read as workers missing."""
        if self.draining_since is not None:
            return False
        if self.ready:
            return True
        return (self.healthy_once and self.failures > 0 and self.ready_since is not None
                and now - self.live_at < policy.hang_s)

    def observe(self, probe: Probe, now: float, policy: HealthPolicy) -> Verdict | None:
        """Take in one probe; the reason to replace the worker, or None to keep it."""
        if not probe.alive:
            return exit_reason(probe.exit_code, self.draining_since is not None)
        if probe.stopping and self.draining_since is None:
            self.draining_since = now
        if self.draining_since is not None:
            # A drain ends with the process exiting; only a drain that outlasts its time
            # is cut short, and it is still a stop, not a hang.
            self.ready = False
            return "stopped" if now - self.draining_since > policy.drain_timeout_s else None
        if not probe.live:
            self.failures += 1
            self.ready = False
            if (self.healthy_once and self.failures >= policy.hang_failures
                    and now - self.live_at >= policy.hang_s):
                return "hung"
            return self._not_ready(now, policy)
        self.failures, self.live_at = 0, now
        # The pid check: a process still holding the port must not pass for this one.
        answer = probe.ready if probe.ready and probe.ready.get("pid") == probe.pid else {}
        self._observe_restore(answer, now)
        ready = bool(answer.get("ready")) and not self.restoring
        if ready:
            if not self.ready:
                self.ready_since = now
            self.partitions = [int(p) for p in answer.get("partitions", [])]
            self.healthy_once = True
        else:
            self.ready_since = None
        self.ready = ready
        return self._not_ready(now, policy)

    def _observe_restore(self, answer: dict[str, Any], now: float) -> None:
        restoring = bool(answer.get("restoring"))
        restore = answer.get("restore") or {}
        remaining = restore.get("remaining")
        done = restore.get("done")
        started = restoring and not self.restoring
        moved = restoring and _progressed(self.restore_remaining, remaining, self.restore_done,
                                          done)
        # Restored: the time to get ready starts again.
        ended = self.restoring and not restoring
        if started or moved or ended:
            self.waiting_since = now
        self.restoring = restoring
        self.restore_remaining = int(remaining) if restoring and remaining is not None else None
        self.restore_done = int(done) if restoring and done is not None else None

    def _not_ready(self, now: float, policy: HealthPolicy) -> Verdict | None:
        if self.ready:
            return None
        if self.restoring:
            return "not_ready" if now - self.waiting_since > policy.restore_stall_s else None
        if not self.healthy_once and now - self.waiting_since > policy.ready_timeout_s:
            return "not_ready"
        return None


def _progressed(old_remaining: int | None, remaining: Any, old_done: int | None,
                done: Any) -> bool:
    """True when a restore moved: fewer records left, or more applied."""
    if remaining is not None and old_remaining is not None and int(remaining) < old_remaining:
        return True
    return done is not None and old_done is not None and int(done) > old_done


@dataclass
class FailoverStorm:
    """Stops replacing a slot's worker when replacing it did not bring progress back.

    After ``policy.storm_failovers`` faults of one slot within ``policy.storm_window_s``, the
    breaker opens: the slot's current worker is kept (a slow or restoring worker does more
    than a fresh one that must restore again) until its partitions commit again.
    """

    faults: deque[float] = field(default_factory=deque)
    open_since: float | None = None

    def record(self, reason: str, now: float) -> None:
        """Note a failover of this slot; stops (``NOT_FAULTS``) are not faults."""
        if reason not in NOT_FAULTS:
            self.faults.append(now)

    def holds(self, now: float, policy: HealthPolicy) -> bool:
        """Whether to keep the slot's worker instead of replacing it; opens the breaker."""
        if self.open_since is not None:
            return True
        while self.faults and now - self.faults[0] > policy.storm_window_s:
            self.faults.popleft()
        if len(self.faults) >= policy.storm_failovers:
            self.open_since = now
            return True
        return False

    def close(self) -> None:
        """Progress is back: replace the slot's worker again when it fails."""
        self.open_since = None
        self.faults.clear()
