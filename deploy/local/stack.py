"""``fraudstream stack up|down|status``: the whole local stack, started and stopped as one."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fraudstream.deploy.local.errors import StackError
from fraudstream.deploy.local.kafka import KafkaCluster
from fraudstream.deploy.local.kafka_security import SecureListener
from fraudstream.deploy.local.process import ManagedProcess, port_in_use, wait_until
from fraudstream.deploy.local.services import (
    RULES_DIR,
    AlertmanagerServer,
    PrometheusServer,
    RedisServer,
)

if TYPE_CHECKING:
    from fraudstream.settings import Settings

logger = logging.getLogger(__name__)

ALL_SERVICES = ("kafka", "redis", "prometheus", "alertmanager")


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
        """Start the named services (those not already running) and wait until each is ready."""
        unknown = set(services) - set(ALL_SERVICES)
        if unknown:
            raise StackError(f"unknown service(s) {sorted(unknown)}; choose from {ALL_SERVICES}")
        for name in services:
            if all(p.running() for p in self._processes(name)):
                continue
            self._check_ports_free(name)
            if name == "kafka":
                self.kafka.start()
            else:
                self._service(name).start()
        for name in services:
            procs = self._processes(name)
            check = self.kafka.ready if name == "kafka" else self._service(name).ready
            wait_until(check, self.config.ready_timeout_s, f"{name} did not become ready",
                       proc=procs[0])
            logger.info("ready service=%s", name)

    def _check_ports_free(self, name: str) -> None:
        running = {p.name for p in self._processes(name) if p.running()}
        for label, port in self._ports(name):
            owner = label.split(" ")[0]
            if owner in running:
                continue
            if port_in_use(self.config.host, port):
                raise StackError(
                    f"port {port} ({label}) on {self.config.host} is already in use by another "
                    f"process; stop it or choose another port (see `fraudstream stack up --help`)")

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
        run_dir = self.kafka.nodes[0].process.run_dir
        for pid_file in sorted(run_dir.glob("kafka-*.pid")):
            proc = ManagedProcess(pid_file.stem, run_dir)
            if proc.stop(grace_s):
                stopped.append(proc.name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        out = []
        for name in ALL_SERVICES:
            for proc, (label, port) in zip(self._processes(name),
                                           [p for p in self._ports(name) if " " not in p[0]],
                                           strict=True):
                pid = proc.pid()
                ready = pid is not None and port_in_use(self.config.host, port)
                out.append(ServiceStatus(label, pid is not None, pid, ready,
                                         f"{self.config.host}:{port}"))
        return out

    def kafka_node(self, node_id: int) -> ManagedProcess:
        """The process of one Kafka node (for broker-failure tests)."""
        return self.kafka.nodes[node_id - 1].process


def stack_from_settings(settings: Settings, nodes: int | None = None) -> LocalStack:
    """The local stack as the settings describe it."""
    return LocalStack(StackConfig(
        root=settings.state_dir, host=settings.bind_host, kafka_port=settings.kafka_port,
        kafka_nodes=nodes or settings.kafka_nodes, kafka_heap_mb=settings.kafka_heap_mb,
        redis_port=settings.redis_port, redis_password=settings.redis_password,
        prometheus_port=settings.prometheus_port,
        alertmanager_port=settings.alertmanager_port, api_port=settings.api_port,
        app_id=settings.app_id,
        webhook_url=f"http://{settings.bind_host}:{settings.api_port}/api/alerts/webhook"))
