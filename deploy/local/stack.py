"""``fraudstream stack up|down|status``: the whole local stack, started and stopped as one."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fraudstream.deploy.local.errors import StackError
from fraudstream.deploy.local.kafka import CONTROLLER_PORT_OFFSET, NODE_PORT_STEP, KafkaCluster
from fraudstream.deploy.local.kafka_security import SecureListener
from fraudstream.deploy.local.process import ManagedProcess, port_in_use, wait_until
from fraudstream.deploy.local.services import (
    RULES_DIR,
    AlertmanagerServer,
    PrometheusServer,
    RedisServer,
)
from fraudstream.loopback import port_taken
from fraudstream.settings import MAX_PORT, MAX_WORKERS, MIN_PORT

if TYPE_CHECKING:
    from fraudstream.settings import Settings

logger = logging.getLogger(__name__)

ALL_SERVICES = ("kafka", "redis", "prometheus", "alertmanager")
#: How Kafka node i's ports follow from FRAUDSTREAM_KAFKA_PORT (for messages and --help).
NODE_PORTS_RULE = (f"node i listens on FRAUDSTREAM_KAFKA_PORT + {NODE_PORT_STEP}*(i-1), its "
                   f"controller on that + {CONTROLLER_PORT_OFFSET}")
#: Where a user chooses the ports (``stack up`` has no port option).
PORT_HINT = ("choose other ports with the FRAUDSTREAM_*_PORT environment variables "
             "(FRAUDSTREAM_KAFKA_PORT, FRAUDSTREAM_REDIS_PORT, FRAUDSTREAM_PROMETHEUS_PORT, "
             f"FRAUDSTREAM_ALERTMANAGER_PORT; Kafka {NODE_PORTS_RULE})")


class Service(Protocol):
    @property
    def process(self) -> ManagedProcess: ...
    def start(self) -> None: ...
    def ready(self) -> bool: ...


@dataclass(frozen=True)
class StackConfig:
    """Where and on which loopback ports the local stack runs."""

    root: Path
    host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_nodes: int = 1
    kafka_heap_mb: int = 384
    redis_port: int = 6379
    #: Redis' requirepass; empty: generated into ``<root>/redis.password`` on first start.
    redis_password: str = ""
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    webhook_url: str = "http://127.0.0.1:8000/api/alerts/webhook"
    ready_timeout_s: float = 90.0
    #: Prometheus and Alertmanager timing (tests shorten them; see tests/integration).
    scrape_interval: str = "2s"
    evaluation_interval: str = "2s"
    alert_group_wait: str = "1s"
    alert_group_interval: str = "5s"
    rules_dir: Path = RULES_DIR
    #: The API (``fraudstream api``) scraped by Prometheus, and the app label of its target.
    api_port: int = 8000
    app_id: str = "fraudstream-scoring"
    #: Kafka's client listener secured with SASL_SSL (None: PLAINTEXT, the default).
    kafka_secure: SecureListener | None = None
    #: Ports of the system's own servers the stack does not start (API, supervisor, workers'
    #: web ports) as (label, port): no stack port may take one of them.
    reserved_ports: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    ready: bool
    address: str


class LocalStack:
    """Real Kafka (KRaft), Redis, Prometheus and Alertmanager as detached loopback processes."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        root = config.root.resolve()
        self.kafka = KafkaCluster(root, config.host, config.kafka_port, config.kafka_nodes,
                                  config.kafka_heap_mb, config.kafka_secure)
        self.redis = RedisServer(root, config.host, config.redis_port, config.redis_password)
        self.prometheus = PrometheusServer(
            root, config.host, config.prometheus_port, config.alertmanager_port,
            scrape_interval=config.scrape_interval,
            evaluation_interval=config.evaluation_interval, rules_dir=config.rules_dir,
            static_targets=(("api", (f"{config.host}:{config.api_port}",),
                             (("component", "api"), ("app", config.app_id))),))
        self.alertmanager = AlertmanagerServer(
            root, config.host, config.alertmanager_port, config.webhook_url,
            group_wait=config.alert_group_wait, group_interval=config.alert_group_interval)

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    def _ports(self, name: str) -> list[tuple[str, int]]:
        return {
            "kafka": self.kafka.ports(),
            "redis": [("redis", self.config.redis_port)],
            "prometheus": [("prometheus", self.config.prometheus_port)],
            "alertmanager": [("alertmanager", self.config.alertmanager_port)],
        }[name]

    def _processes(self, name: str) -> list[ManagedProcess]:
        if name == "kafka":
            return [n.process for n in self.kafka.nodes]
        return [self._service(name).process]

    def _service(self, name: str) -> Service:
        services: dict[str, Service] = {"redis": self.redis, "prometheus": self.prometheus,
                                        "alertmanager": self.alertmanager}
        return services[name]

    def up(self, services: tuple[str, ...] = ALL_SERVICES) -> None:
        """Start the named services (those not already running) and wait until each is ready.

        Fails before starting anything when two services would share a port or a port is
        taken; fails later (a service exits or is not ready in time) after stopping what this
        call started, so a failed ``up`` leaves running only what ran before it.
        """
        unknown = set(services) - set(ALL_SERVICES)
        if unknown:
            raise StackError(f"unknown service(s) {sorted(unknown)}; choose from {ALL_SERVICES}")
        self.check_ports()
        to_start = [n for n in services if not all(p.running() for p in self._processes(n))]
        for name in to_start:
            self._check_ports_free(name)
        before = {p.name for n in services for p in self._processes(n) if p.running()}
        try:
            self._start_and_wait(services, to_start)
        except BaseException:
            self._stop_started(services, before)
            raise

    def _start_and_wait(self, services: tuple[str, ...], to_start: list[str]) -> None:
        for name in to_start:
            if name == "kafka":
                self.kafka.start()
            else:
                self._service(name).start()
        for name in services:
            procs = self._processes(name)
            check = self.kafka.ready if name == "kafka" else self._service(name).ready
            wait_until(check, self.config.ready_timeout_s, f"{name} did not become ready",
                       proc=procs, laggard=self.kafka.laggard if name == "kafka" else None)
            logger.info("ready service=%s", name)

    def _stop_started(self, services: tuple[str, ...], before: set[str]) -> None:
        """Stop the processes of ``services`` not in ``before`` (those a failed ``up`` started)."""
        for name in reversed(services):
            for proc in self._processes(name):
                if proc.name not in before and proc.stop():
                    logger.warning("stopped name=%s: the stack did not come up", proc.name)

    def own_ports(self) -> list[tuple[str, int]]:
        """Every (label, port) the stack's processes listen on, whichever are started."""
        return [lp for name in ALL_SERVICES for lp in self._ports(name)]

    def check_ports(self) -> None:
        """Refuse a port past 65535, or a layout where a stack port is another service's
        (one would fail to bind only after the other started, with a log line as the reason).

        Checked against the API, supervisor and worker ports too, but those among themselves
        are left to the commands that start them."""
        owners: dict[int, str] = {}
        for label, port in self.own_ports():
            if not MIN_PORT <= port <= MAX_PORT:  # a Kafka node's port derived past the last one
                raise StackError(f"{label} would use port {port}, beyond {MAX_PORT}; "
                                 f"{PORT_HINT}")
            _refuse_shared(owners, label, port)
            owners[port] = label
        for label, port in (("api", self.config.api_port), *self.config.reserved_ports):
            _refuse_shared(owners, label, port)

    def _check_ports_free(self, name: str) -> None:
        running = {p.name for p in self._processes(name) if p.running()}
        for label, port in self._ports(name):
            owner = label.split(" ")[0]
            if owner in running:
                continue
            if port_taken(self.config.host, port):  # could the service bind it (not: answers)
                raise StackError(
                    f"port {port} ({label}) on {self.config.host} is already in use by another "
                    f"process; stop it or {PORT_HINT}")

    def down(self, grace_s: float = 20.0) -> list[str]:
        """Stop every process this stack started (and nothing else); returns their names.

        Each gets ``grace_s`` after SIGTERM before SIGKILL."""
        stopped = []
        # Reverse start order: clients of Kafka first, Kafka last.
        for name in reversed(ALL_SERVICES):
            for proc in self._processes(name):
                if proc.stop(grace_s):
                    stopped.append(proc.name)
        # Kafka nodes started with another --nodes count than this stack's.
        for node in self.kafka.started_nodes():
            if node.process.stop(grace_s):
                stopped.append(node.process.name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        """One row per process: every Kafka node with a pid file, whatever ``--nodes`` says."""
        rows = [(n.process, n.broker_port) for n in self.kafka.started_nodes()]
        rows += [(self._service(name).process, port) for name in ALL_SERVICES
                 if name != "kafka" for _, port in self._ports(name)]
        out = []
        for proc, port in rows:
            pid = proc.pid()
            ready = pid is not None and port_in_use(self.config.host, port)
            out.append(ServiceStatus(proc.name, pid is not None, pid, ready,
                                     f"{self.config.host}:{port}"))
        return out

    def kafka_node(self, node_id: int) -> ManagedProcess:
        """The process of one Kafka node (for broker-failure tests)."""
        return self.kafka.nodes[node_id - 1].process


def _refuse_shared(owners: dict[int, str], label: str, port: int) -> None:
    if port in owners:
        raise StackError(f"{owners[port]} and {label} would both use port {port}; {PORT_HINT}")


def stack_from_settings(settings: Settings, nodes: int | None = None) -> LocalStack:
    """The local stack as the settings describe it."""
    return LocalStack(StackConfig(
        root=settings.state_dir, host=settings.bind_host, kafka_port=settings.kafka_port,
        kafka_nodes=nodes or settings.kafka_nodes, kafka_heap_mb=settings.kafka_heap_mb,
        redis_port=settings.redis_port, redis_password=settings.redis_password,
        prometheus_port=settings.prometheus_port,
        alertmanager_port=settings.alertmanager_port, api_port=settings.api_port,
        app_id=settings.app_id,
        webhook_url=f"http://{settings.bind_host}:{settings.api_port}/api/alerts/webhook",
        reserved_ports=(("supervisor", settings.supervisor_port),
                        *((f"worker {n}", settings.worker_web_port + n)
                          for n in range(1, MAX_WORKERS + 1)))))
