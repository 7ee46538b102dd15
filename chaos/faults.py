"""The faults themselves: signals to supervised workers, stopped brokers, Redis, poison."""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from deploy.local import LocalStack
from workers.supervisor import Supervisor

logger = logging.getLogger(__name__)


class FaultUnavailable(RuntimeError):
    """This fault cannot be injected here (for example a broker fault on a one-node stack)."""

    retriable = False


@dataclass
class FaultContext:
    """What a fault may act on: the supervised workers and the local stack's processes."""

    supervisor: Supervisor
    stack: LocalStack | None
    notes: dict[str, Any] = field(default_factory=dict)

    def first_worker_pid(self) -> int:
        worker = self.supervisor.slots[0].worker
        if worker.proc is None:
            raise FaultUnavailable("the first worker has no process")
        return worker.proc.pid

    def require_stack(self) -> LocalStack:
        if self.stack is None:
            raise FaultUnavailable("this fault needs the local stack (fraudstream stack up)")
        return self.stack


def signal_worker(ctx: FaultContext, signum: signal.Signals) -> None:
    """Send ``signum`` to the first active worker (its whole process group)."""
    worker = ctx.supervisor.slots[0].worker
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


def stop_broker(ctx: FaultContext, hard: bool) -> None:
    """SIGKILL (hard) or SIGTERM the last Kafka node (never the only one when hard)."""
    stack = ctx.require_stack()
    nodes = stack.config.kafka_nodes
    if hard and nodes < 3:
        raise FaultUnavailable("kill-broker needs a three-node cluster: "
                               "fraudstream stack up --nodes 3")
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
