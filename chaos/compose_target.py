"""Chaos against a container deployment (docker-compose.yml): the faults act on containers
through the Docker SDK, and the same load, ledger and judgement as a local run decide.

    fraudstream chaos run kill-worker --target compose --project fraudstream

The run streams simulated transactions into the deployment's own ``transactions`` topic (with
FRAUDSTREAM_BOOTSTRAP_SERVERS naming the deployment's Kafka host listener), reads its
``scores`` and dead letters, and at the fault acts on the container of the ``workers`` service
(the supervisor with its workers and standby):

- ``kill-worker``: SIGKILL the container (every worker and the supervisor die at once, as on
  a lost host), then start it again after the fault's seconds, as an orchestrator would: the
  new workers resume from their card tables on the ``worker-state`` volume;
- ``hang-worker``: pause the container (cgroup freezer: nothing in it runs, sockets stay open)
  and unpause it after the fault's seconds: the group rebalances away from it, and when it
  comes back its writes must be fenced.

Lost 0 and duplicates 0 are judged on the committed outputs, exactly as for local runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fraudstream.chaos.faults import FaultContext, FaultUnavailable
from fraudstream.chaos.report import ChaosReport
from fraudstream.chaos.runner import ChaosRunner, RunPlan
from fraudstream.chaos.scenarios import Scenario
from fraudstream.errors import UserError
from fraudstream.ledger import quiet_collector
from fraudstream.settings import Settings

if TYPE_CHECKING:
    from docker.models.containers import Container

logger = logging.getLogger(__name__)

#: The compose service whose container holds the supervisor and its workers.
WORKERS_SERVICE = "workers"
DOCKER_HINT = ("the Docker SDK is missing: pip install 'fraudstream[docker]' "
               "(the `docker` package)")


def workers_container(project: str, service: str = WORKERS_SERVICE) -> Container:
    """The running container of ``service`` in compose project ``project``."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        raise UserError(DOCKER_HINT) from exc
    try:
        client = docker.from_env()
        found = client.containers.list(filters={"label": [
            f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]})
    except DockerException as exc:
        raise UserError(f"no Docker engine answers ({exc}); start dockerd, or set "
                        "DOCKER_HOST") from exc
    if not found:
        raise UserError(f"no running `{service}` container in compose project {project!r}; "
                        f"start the deployment (docker-compose -p {project} up -d) or name "
                        "its project with --project")
    return found[0]


def _kill(container: Container) -> Callable[[FaultContext], None]:
    def inject(ctx: FaultContext) -> None:
        logger.warning("chaos: SIGKILL container %s", container.name)
        ctx.notes["container"] = container.name
        container.kill(signal="SIGKILL")
    return inject


def _start(container: Container) -> Callable[[FaultContext], None]:
    def heal(_ctx: FaultContext) -> None:
        container.reload()
        if container.status != "running":
            logger.warning("chaos: starting container %s again", container.name)
            container.start()
    return heal


def _pause(container: Container) -> Callable[[FaultContext], None]:
    def inject(ctx: FaultContext) -> None:
        logger.warning("chaos: pausing container %s", container.name)
        ctx.notes["container"] = container.name
        container.pause()
    return inject


def _unpause(container: Container) -> Callable[[FaultContext], None]:
    def heal(_ctx: FaultContext) -> None:
        container.reload()
        if container.status == "paused":
            logger.warning("chaos: unpausing container %s", container.name)
            container.unpause()
    return heal


#: Scenario name -> (inject, heal) acting on the workers' container.
CONTAINER_FAULTS: dict[str, tuple[Callable[[Container], Callable[[FaultContext], None]],
                                  Callable[[Container], Callable[[FaultContext], None]]]] = {
    "kill-worker": (_kill, _start),
    "hang-worker": (_pause, _unpause),
}


class ComposeRunner(ChaosRunner):
    """A chaos run against the workers of a compose deployment, judged by the same ledger."""

    def __init__(self, settings: Settings, plan: RunPlan, project: str) -> None:
        super().__init__(settings, None, plan, isolate=False)
        self.project = project

    def run(self, scenario: Scenario) -> ChaosReport:
        return self._run(scenario)

    def _run(self, scenario: Scenario) -> ChaosReport:
        report = ChaosReport(scenario.name, run_id=f"compose:{self.project}",
                             alerts_expected=[], alert_time_scale=1.0)
        if scenario.name not in CONTAINER_FAULTS:
            report.skipped = (f"{scenario.name} has no container fault; with --target compose "
                              f"use {', '.join(CONTAINER_FAULTS)}")
            return report
        container = workers_container(self.project)
        inject, heal = CONTAINER_FAULTS[scenario.name]
        # The container's own fault, its own heal; what the local scenario expects of its
        # supervisor (a failover event, alerts of its run) is not this run's to see.
        faulted = dataclasses.replace(
            scenario, inject=inject(container), heal=heal(container),
            heal_after_s=scenario.heal_after_s or 10.0, expect_alerts=(),
            expect_failover=False, expect_fenced=False, check_cards=False,
            preload_cards=0, soak=False)
        ctx = FaultContext(None, None, self.base)
        try:
            with quiet_collector():
                ledger, start_ms = asyncio.run(self._drive(self.base, faulted, ctx, report))
        except FaultUnavailable as exc:
            report.skipped = str(exc)
            return report
        finally:
            heal(container)(ctx)
        self._notes = ctx.notes
        self.logs = {container.name: _log_tail(container)}
        self._judge(report, faulted, ledger, start_ms, None)
        return report


def _log_tail(container: Any, lines: int = 40) -> str:
    try:
        return str(container.logs(tail=lines).decode(errors="replace"))
    except Exception as exc:  # the logs are a courtesy when a run failed
        return f"(no logs: {exc!r})"
