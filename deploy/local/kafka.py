"""Apache Kafka in KRaft mode from Maven Central jars: fetch, format, start, check."""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fraudstream.deploy.local.errors import StackError
from fraudstream.deploy.local.process import ManagedProcess, port_in_use

if TYPE_CHECKING:
    from fraudstream.deploy.local.kafka_security import SecureListener
    from fraudstream.settings import Settings

logger = logging.getLogger(__name__)

#: Node i listens on the Kafka port + NODE_PORT_STEP * (i - 1), its controller on that + 1000.
#: Not consecutive ports: node 2 on 9093 would take Alertmanager's default port (and 9094 is
#: Alertmanager's cluster port); steps of 100 keep 9192/9292 and 10092-10292 clear of every
#: default port of the system (see Settings).
NODE_PORT_STEP = 100
CONTROLLER_PORT_OFFSET = 1000

KAFKA_DIR = Path(__file__).resolve().parent.parent / "kafka"
LIBS_DIR = KAFKA_DIR / "libs"
JARS_STAMP = LIBS_DIR / ".complete"
JDK_HINT = "Install a JDK 17+ (Debian: apt-get install default-jdk-headless)."


def require_tool(name: str, hint: str) -> str:
    """Path of an executable, or a StackError that says how to install it."""
    path = shutil.which(name)
    if path is None:
        raise StackError(f"{name} not found on PATH. {hint}")
    return path


def ensure_jars() -> Path:
    """Download Kafka and its runtime dependencies into deploy/kafka/libs once (idempotent)."""
    pom_digest = hashlib.sha256((KAFKA_DIR / "pom.xml").read_bytes()).hexdigest()
    if JARS_STAMP.exists() and JARS_STAMP.read_text().strip() == pom_digest:
        return LIBS_DIR
    if LIBS_DIR.exists():
        shutil.rmtree(LIBS_DIR)  # the pom changed: no stale jar may stay on the classpath
    require_tool("java", JDK_HINT)
    mvn = require_tool("mvn", "Install Maven (Debian: apt-get install maven) or run `make setup`.")
    logger.info("fetching Kafka jars from Maven Central into %s", LIBS_DIR)
    cmd = [mvn, "-q", "-B", "-f", str(KAFKA_DIR / "pom.xml"), "dependency:copy-dependencies",
           f"-DoutputDirectory={LIBS_DIR}", "-DincludeScope=runtime"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"maven could not fetch the Kafka jars:\n{result.stdout[-2000:]}"
                         f"{result.stderr[-2000:]}")
    JARS_STAMP.write_text(pom_digest + "\n")
    return LIBS_DIR


@dataclass(frozen=True)
class KafkaNode:
    """One combined broker+controller KRaft node."""

    node_id: int
    host: str
    broker_port: int
    controller_port: int
    data_dir: Path
    conf_dir: Path

    @property
    def server_log(self) -> Path:
        """Kafka's own (log4j) log: its stdout says next to nothing, a bind failure is here."""
        return self.conf_dir.parent / "logs" / f"kafka-{self.node_id}.server.log"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(f"kafka-{self.node_id}", self.conf_dir.parent / "run",
                              detail_log=self.server_log)

    def properties(self, voters: str, replication: int, min_isr: int,
                   secure: SecureListener | None = None) -> str:
        """server.properties tuned light for a 2-core machine; ``secure`` replaces the
        PLAINTEXT client listener with a SASL_SSL one."""
        listeners = secure.properties(self.host, self.broker_port, self.controller_port) \
            if secure is not None else [
                f"listeners=PLAINTEXT://{self.host}:{self.broker_port},"
                f"CONTROLLER://{self.host}:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://{self.host}:{self.broker_port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
            ]
        return "\n".join([
            "process.roles=broker,controller",
            f"node.id={self.node_id}",
            f"controller.quorum.voters={voters}",
            *listeners,
            f"log.dirs={self.data_dir}",
            "num.partitions=4",
            f"default.replication.factor={replication}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={replication}",
            "offsets.topic.num.partitions=8",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min_isr}",
            "transaction.state.log.num.partitions=8",
            "group.initial.rebalance.delay.ms=0",
            # Lets workers use short sessions for fast failover (broker default minimum is 6 s).
            "group.min.session.timeout.ms=1000",
            "log.cleaner.dedupe.buffer.size=16777216",
            "num.network.threads=2",
            "num.io.threads=2",
            "num.recovery.threads.per.data.dir=1",
            "auto.create.topics.enable=false",
            "message.max.bytes=1048588",
            "",
        ])


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64, never starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def log4j_properties(log_file: Path) -> str:
    return "\n".join([
        "log4j.rootLogger=INFO, file",
        "log4j.logger.kafka=INFO",
        "log4j.logger.org.apache.kafka=INFO",
        "log4j.logger.state.change.logger=WARN",
        "log4j.logger.kafka.request.logger=WARN",
        "log4j.appender.file=org.apache.log4j.FileAppender",
        f"log4j.appender.file.File={log_file}",
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n",
        "",
    ])


def node_ports(port: int, node_id: int) -> tuple[int, int]:
    """(broker, controller) port of node ``node_id`` of a cluster whose first node uses ``port``."""
    broker = port + NODE_PORT_STEP * (node_id - 1)
    return broker, broker + CONTROLLER_PORT_OFFSET


class KafkaCluster:
    """1..N KRaft nodes on loopback; node i uses the ports ``node_ports(port, i)`` gives."""

    def __init__(self, root: Path, host: str, port: int, nodes: int, heap_mb: int,
                 secure: SecureListener | None = None) -> None:
        if nodes < 1:
            raise StackError("the Kafka cluster needs at least one node")
        self.root = root
        self.host = host
        self.port = port
        self.heap_mb = heap_mb
        #: A SASL_SSL client listener instead of PLAINTEXT (None: the default stack).
        self.secure = secure
        self.nodes = [self.node(i) for i in range(1, nodes + 1)]

    def node(self, node_id: int) -> KafkaNode:
        """Node ``node_id`` of this layout, also one beyond this cluster's count (a node a
        larger ``--nodes`` started, which status and down still have to find)."""
        broker, controller = node_ports(self.port, node_id)
        return KafkaNode(node_id, self.host, broker, controller,
                         self.root / "kafka" / f"node-{node_id}", self.root / "conf")

    def started_nodes(self) -> list[KafkaNode]:
        """This cluster's nodes plus any other node with a pid file under the run folder."""
        run_dir = self.nodes[0].process.run_dir
        ids = {n.node_id for n in self.nodes}
        for pid_file in run_dir.glob("kafka-*.pid"):
            suffix = pid_file.stem.removeprefix("kafka-")
            if suffix.isdigit() and int(suffix) > 0:
                ids.add(int(suffix))
        return [self.node(i) for i in sorted(ids)]

    def laggard(self) -> ManagedProcess:
        """The first node whose broker port does not answer (else node 1): the one whose log
        explains a cluster that is not ready."""
        for n in self.nodes:
            if not port_in_use(n.host, n.broker_port):
                return n.process
        return self.nodes[0].process

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{n.host}:{n.broker_port}" for n in self.nodes)

    @property
    def client_target(self) -> Settings | str:
        """What the launcher's own clients connect with: the bootstrap string, or the broker
        user's settings when the listener is secured."""
        if self.secure is None:
            return self.bootstrap
        return self.secure.client_settings(self.bootstrap)

    @property
    def replication(self) -> int:
        return 3 if len(self.nodes) >= 3 else 1

    def ports(self) -> list[tuple[str, int]]:
        out = []
        for n in self.nodes:
            out += [(f"kafka-{n.node_id}", n.broker_port),
                    (f"kafka-{n.node_id} controller", n.controller_port)]
        return out

    def start(self) -> None:
        """Format storage (first run only) and start every node that is not running."""
        libs = ensure_jars()
        java = require_tool("java", JDK_HINT)
        voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in self.nodes)
        min_isr = 2 if self.replication >= 3 else 1
        cluster_id_file = self.root / "kafka" / "cluster-id"
        cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
        if not cluster_id_file.exists():
            cluster_id_file.write_text(new_cluster_id())
        cluster_id = cluster_id_file.read_text().strip()
        classpath = f"{libs}/*"
        for node in self.nodes:
            if node.process.running():
                continue
            node.conf_dir.mkdir(parents=True, exist_ok=True)
            props = node.conf_dir / f"kafka-{node.node_id}.properties"
            props.write_text(node.properties(voters, self.replication, min_isr, self.secure))
            log4j = node.conf_dir / f"kafka-{node.node_id}-log4j.properties"
            log4j.write_text(log4j_properties(node.server_log))
            jvm = [java, f"-Xms{min(256, self.heap_mb)}m", f"-Xmx{self.heap_mb}m",
                   "-XX:+UseSerialGC",
                   "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{log4j}",
                   "-cp", classpath]
            if not (node.data_dir / "meta.properties").exists():
                node.data_dir.mkdir(parents=True, exist_ok=True)
                fmt = subprocess.run(
                    [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                     "-c", str(props), "--ignore-formatted",
                     *(self.secure.format_arguments() if self.secure else [])],
                    capture_output=True, text=True, check=False)
                if fmt.returncode != 0:
                    raise StackError(f"kafka storage format failed for node {node.node_id}:\n"
                                     f"{fmt.stdout}{fmt.stderr}")
            node.process.start([*jvm, "kafka.Kafka", str(props)])

    def ready(self) -> bool:
        """True when every node is up and registered with the controller quorum."""
        from fraudstream import kafka_clients

        if not all(port_in_use(n.host, n.broker_port) for n in self.nodes):
            return False
        try:
            admin = kafka_clients.admin(self.client_target, request_timeout_ms=3000)
        except Exception:
            return False
        try:
            cluster = admin.describe_cluster()
            return len(cluster.get("brokers", [])) >= len(self.nodes)
        except Exception:
            return False
        finally:
            admin.close()
