"""The faults themselves: signals to supervised workers, stopped brokers, Redis, poison."""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from fraudstream.chaos.worker_metrics import post_chaos_hook, scrape, summed, worker_url
from fraudstream.deploy.local import LocalStack
from fraudstream.settings import Settings
from fraudstream.workers.supervisor import Supervisor

logger = logging.getLogger(__name__)


class FaultUnavailable(RuntimeError):
    """This fault cannot be injected here (for example a broker fault on a one-node stack)."""

    retriable = False


@dataclass
class FaultContext:
    """What a fault may act on: the supervised workers and the local stack's processes.

    ``supervisor`` is None when the workers are not this process's (a container deployment:
    ``fraudstream.chaos.compose_target``); faults that need it say so.
    """

    supervisor: Supervisor | None
    stack: LocalStack | None
    settings: Settings
    notes: dict[str, Any] = field(default_factory=dict)
    #: The run's ledger (``fraudstream.ledger.Ledger``), once the load has started.
    ledger: Any = None

    def workers(self) -> Supervisor:
        """The supervisor of the run's workers, or FaultUnavailable when it is not ours."""
        if self.supervisor is None:
            raise FaultUnavailable("this fault needs workers supervised by the chaos run")
        return self.supervisor

    def first_worker_pid(self) -> int:
        worker = self.workers().slots[0].worker
        if worker.proc is None:
            raise FaultUnavailable("the first worker has no process")
        return worker.proc.pid

    def require_stack(self) -> LocalStack:
        if self.stack is None:
            raise FaultUnavailable("this fault needs the local stack (fraudstream stack up)")
        return self.stack


def signal_worker(ctx: FaultContext, signum: signal.Signals) -> None:
    """Send ``signum`` to the first active worker (its whole process group)."""
    worker = ctx.workers().slots[0].worker
    ctx.notes["victim_pid"] = ctx.first_worker_pid()
    logger.warning("chaos: %s to worker pid=%s", signum.name, ctx.notes["victim_pid"])
    worker.signal(signum)


def continue_worker(ctx: FaultContext) -> None:
    """SIGCONT the worker stopped by a hang (harmless if the supervisor already killed it)."""
    import contextlib
    import os

    pid = ctx.notes.get("victim_pid")
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGCONT)


def replace_supervisor(ctx: FaultContext) -> None:
    """The supervisor dies (SIGKILL: it stops without stopping its workers) and a new one
    starts for the same app: it finds the workers its predecessor left running, kills them
    (they would keep the ports and keep writing), and starts its own, which join with the same
    slot membership ids and take the same partitions over."""
    old = ctx.workers()
    old.abandon()
    left = sorted(w.proc.pid for w in [s.worker for s in old.slots] + old.standbys
                  if w.proc is not None and w.alive())
    logger.warning("chaos: supervisor abandoned; workers left running pids=%s", left)
    new = Supervisor(old.settings, old.n_workers, old.n_standbys, old.policy)
    new.serve_metrics(required=False)
    new.start()
    ctx.notes["orphans"] = {"left": left, "stopped": sorted(new.orphans_stopped)}
    ctx.supervisor = new
    new.wait_ready(timeout=180)
    ctx.notes["supervisor_thread"] = new.run_in_thread()
    ctx.notes["old_supervisor"] = old


def recreate_input_topic(ctx: FaultContext) -> None:
    """Delete the transactions topic and create it again (same partitions and settings);
    ``scores``, the dead letters and the card changelog stay. Offsets start over at 0, so
    every new record sits at an offset some output of the old topic already names."""
    from fraudstream.workers.topics import create_again, delete_topics_and_wait

    topic = ctx.settings.topic_transactions
    try:
        delete_topics_and_wait(ctx.settings, [topic], "fraudstream-chaos")
        create_again(ctx.settings, {topic})
    except TimeoutError as exc:
        raise FaultUnavailable(str(exc)) from exc
    if ctx.ledger is not None:
        ctx.ledger.new_incarnation()
    logger.warning("chaos: topic %s deleted and created again", topic)


def stop_broker(ctx: FaultContext, hard: bool) -> None:
    """SIGKILL (hard) or SIGTERM the last Kafka node (never the only one when hard)."""
    stack = ctx.require_stack()
    nodes = stack.config.kafka_nodes
    if hard and nodes < 3:
        raise FaultUnavailable("kill-broker needs a three-node cluster (the runner starts "
                               "one when the stack has a single node)")
    node = stack.kafka_node(nodes)
    ctx.notes["broker_node"] = nodes
    if hard:
        node.kill(signal.SIGKILL)
    else:
        node.stop(timeout=10)


def start_broker(ctx: FaultContext) -> None:
    stack = ctx.require_stack()
    stack.up(("kafka",))


def stop_redis(ctx: FaultContext) -> None:
    ctx.require_stack().redis.process.stop(timeout=10)


def start_redis(ctx: FaultContext) -> None:
    ctx.require_stack().up(("redis",))


def promote_tampered_model(ctx: FaultContext) -> None:
    """Register a copy of production as a new version, promote it, then tamper with every copy.

    The promotion verifies the version; its bytes are then flipped in every store before the
    workers fetch it (an attacker, or a broken disk, between promotion and load). The workers
    must refuse it and keep serving the current version.
    """
    import dataclasses

    from fraudstream.model_registry.artifact import read_manifest
    from fraudstream.model_registry.registry import model_key
    from fraudstream.operations.models import announce, open_registry

    settings = ctx.settings
    registry = open_registry(settings)
    current = str(registry.resolve("production"))
    manifest = dataclasses.replace(read_manifest(settings.model_path),
                                   version=f"{current}-tampered", signature="")
    registry.register(settings.model_path.read_bytes(), manifest)
    done = registry.promote(manifest.version)
    for store in registry.stores:
        data = bytearray(store.get(model_key(manifest.version)) or b"")
        data[len(data) // 2] ^= 0xFF
        store.put(model_key(manifest.version), bytes(data))
    announce(settings, done.alias, done.version, done.generation)
    ctx.notes["tampered_version"] = manifest.version
    logger.warning("chaos: promoted tampered version=%s", manifest.version)


def set_model_fault(ctx: FaultContext, delay_s: float, fail: bool = False) -> None:
    """Make every active worker's model slow or failing (the workers' chaos hook)."""
    _post_to_workers(ctx, "/chaos/model", {"delay_s": delay_s, "fail": fail})


def set_delivery_fault(ctx: FaultContext, withhold: int, repeat: int) -> None:
    """Make every active worker's consumer skip ``withhold`` records and repeat ``repeat``."""
    _post_to_workers(ctx, "/chaos/delivery", {"withhold": withhold, "repeat": repeat})


def _post_to_workers(ctx: FaultContext, path: str, body: dict[str, Any]) -> None:
    """POST ``body`` to a chaos hook of every active worker."""
    for slot in ctx.workers().slots:
        _post_to_worker(ctx, slot.index, path, body)
    logger.warning("chaos: %s %s on %d workers", path, body, len(ctx.workers().slots))


def _post_to_worker(ctx: FaultContext, index: int, path: str, body: dict[str, Any]) -> None:
    """POST ``body`` to a chaos hook of the worker in slot ``index``."""
    post_chaos_hook(_worker_url(ctx, index), path, body)


#: How long the zombie's model takes per batch, so that the freeze lands in the middle of a
#: batch (scored, its outputs not yet written), not between two: on waking it tries to write.
def zombie_model_delay(settings: Settings) -> float:
    """How much the zombie's model is slowed per batch: long enough that a freeze lands inside
    a batch, short enough that the model still answers within its timeout. A call that overran
    (the 2 s used until 2026-12-02 against the 1 s default) makes the next batches skip the
    model while its thread runs on: those batches took milliseconds, a freeze could land
    between two of them with nothing in flight, and a clean-clone run fenced nothing."""
    timeout = settings.model_timeout_s
    return 0.8 * timeout if timeout and timeout > 0 else 2.0


_BATCH_COUNTERS = ("fraudstream_transactions_consumed_total",
                   "fraudstream_transactions_scored_total",
                   "fraudstream_transactions_dead_lettered_total")


def _counters(url: str, names: tuple[str, ...]) -> list[float]:
    """Each named metric of a worker (summed over its labels), from one scrape."""
    lines = scrape(url, timeout=5.0)
    return [summed(lines, name) for name in names]


def wait_for_a_fresh_batch(url: str, timeout: float) -> bool:
    """Return True just after the worker at ``url`` started a batch it has not finished
    (consumed counts a batch when it starts, scored and dead-lettered when it ends), False if
    none started within ``timeout``. Polled every 0.1 s: with a slowed model most of the
    batch is still ahead, so a freeze now lands in it (a freeze timed by a fixed sleep once
    landed between two batches, and there was nothing to fence)."""
    import time

    deadline = time.monotonic() + timeout
    previous = _counters(url, _BATCH_COUNTERS)[0]
    while time.monotonic() < deadline:
        consumed, scored, dead = _counters(url, _BATCH_COUNTERS)
        if consumed > previous and consumed > scored + dead:
            return True
        previous = consumed
        time.sleep(0.1)
    return False


def _worker_url(ctx: FaultContext, index: int) -> str:
    return worker_url(ctx.settings, index)


def freeze_unwatched(ctx: FaultContext) -> None:
    """Freeze the first active worker in the middle of a batch, with nobody to kill it.

    The supervisor leaves its slot alone (as a supervisor that lost track of it would) for the
    freeze and a while after; the group moves the worker's partitions to the others once its
    session expires. Its model is slowed first, so a batch is under way when the SIGSTOP
    lands, and its transaction comes after the partitions have moved.
    """
    slot = ctx.workers().slots[0]
    # Until the thaw says otherwise (however long the fault is made to last).
    ctx.workers().leave_alone(slot.index, 3600.0)
    delay = zombie_model_delay(ctx.settings)
    _post_to_worker(ctx, slot.index, "/chaos/model", {"delay_s": delay})
    if not wait_for_a_fresh_batch(_worker_url(ctx, slot.index), 4 * delay):
        logger.warning("chaos: no batch under way in slot %d; freezing anyway", slot.index)
    ctx.notes["zombie_slot"] = slot.index
    signal_worker(ctx, signal.SIGSTOP)


def thaw_zombie(ctx: FaultContext) -> None:
    """Wake the frozen worker (its partitions belong to others by now) and give it its normal
    model speed back once it answers again."""
    import time

    continue_worker(ctx)
    index = ctx.notes.get("zombie_slot")
    if index is None:
        return
    # Time to rejoin the group before the supervisor judges the worker again.
    ctx.workers().leave_alone(index, 20.0)
    deadline = time.monotonic() + 20.0
    while True:
        try:
            _post_to_worker(ctx, index, "/chaos/model", {"delay_s": 0.0})
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                logger.warning("chaos: the woken worker did not answer error=%r", exc)
                return
            time.sleep(0.5)


def start_cpu_hogs(ctx: FaultContext) -> None:
    """Busy-loop one process per core on every core the workers may run on.

    The hogs run at the workers' own priority, so the workers get about half the CPU they
    had: what a noisy neighbour or a burst of other work on the host does.
    """
    import os
    import subprocess
    import sys

    cores = sorted(os.sched_getaffinity(0))
    hogs = []
    for core in cores:
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        os.sched_setaffinity(hog.pid, {core})
        hogs.append(hog)
    ctx.notes["cpu_hogs"] = hogs
    logger.warning("chaos: %d CPU hogs on cores %s", len(hogs), cores)


def stop_cpu_hogs(ctx: FaultContext) -> None:
    """Kill the CPU hogs (harmless when there are none)."""
    for hog in ctx.notes.pop("cpu_hogs", []):
        hog.kill()
        hog.wait(10)
