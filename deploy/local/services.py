"""Redis, Prometheus and Alertmanager from Debian packages, configured for loopback."""

from __future__ import annotations

import json
import os
import secrets
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fraudstream.deploy.local.kafka import require_tool
from fraudstream.deploy.local.process import ManagedProcess

RULES_DIR = Path(__file__).resolve().parents[2] / "monitoring" / "rules"
#: Where the generated Redis password is kept, under the stack's root (the state dir);
#: fraudstream.settings reads the same file (a test keeps the two names equal).
REDIS_PASSWORD_FILE = "redis.password"
APT_HINT = "Run `make setup` (installs redis-server, prometheus, prometheus-alertmanager)."


def http_ok(url: str) -> bool:
    """True when GET url answers 2xx within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


@dataclass(frozen=True)
class RedisServer:
    """Redis with a password (``requirepass``): any local process, a web page's requests
    included, could otherwise read and overwrite the model registry's copies in it.

    The password is ``password`` if given, else the one kept in ``<root>/redis.password``
    (generated there, mode 0600, on first use). It reaches Redis through a config file of
    mode 0600, never the command line (``ps`` shows that) or a log.
    """

    root: Path
    host: str
    port: int
    password: str = ""

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("redis", self.root / "run")

    @property
    def password_file(self) -> Path:
        return self.root / REDIS_PASSWORD_FILE

    def secret(self) -> str:
        """The password clients must send (read, or generated, from ``password_file``)."""
        if self.password:
            return self.password
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            pass
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile
            return self.password_file.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24) + "\n")
        return self.password_file.read_text().strip()

    def start(self) -> None:
        exe = require_tool("redis-server", APT_HINT)
        data = self.root / "redis"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.root / "redis-auth.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"requirepass {_quoted(self.secret())}\n")
        self.process.start([exe, str(conf), "--bind", self.host, "--port", str(self.port),
                            "--dir", str(data), "--save", "", "--appendonly", "yes",
                            "--protected-mode", "yes", "--daemonize", "no"])

    def ready(self) -> bool:
        try:
            password = self.secret().encode()
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n"
                             % (len(password), password))
                answer = b""
                while answer.count(b"\r\n") < 2:
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    answer += chunk
                return answer.startswith(b"+OK\r\n+PONG")
        except OSError:
            return False


def _quoted(value: str) -> str:
    """``value`` as a double-quoted string of redis.conf."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class PrometheusServer:
    """Prometheus scraping every fraudstream process listed in ``targets/*.json`` (file_sd)."""

    root: Path
    host: str
    port: int
    alertmanager_port: int
    scrape_interval: str = "2s"
    evaluation_interval: str = "2s"
    #: Alert and recording rules (tests point this at a copy with compressed durations).
    rules_dir: Path = RULES_DIR
    #: Static scrape targets written at start as file_sd files: (file stem, targets, labels).
    static_targets: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]], ...] = ()

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("prometheus", self.root / "run")

    @property
    def targets_dir(self) -> Path:
        return self.root / "prometheus" / "targets"

    def config(self) -> str:
        # Absolute: Prometheus resolves a relative path against its config file's directory
        # (a relative state dir once left it with no rules at all).
        rules = f"  - {self.rules_dir.resolve()}/*.yml\n"
        return (
            "global:\n"
            f"  scrape_interval: {self.scrape_interval}\n"
            f"  evaluation_interval: {self.evaluation_interval}\n"
            "rule_files:\n" + rules +
            "alerting:\n"
            "  alertmanagers:\n"
            "    - static_configs:\n"
            f"        - targets: ['{self.host}:{self.alertmanager_port}']\n"
            "scrape_configs:\n"
            "  - job_name: fraudstream\n"
            "    file_sd_configs:\n"
            f"      - files: ['{self.targets_dir.resolve()}/*.json']\n"
            "        refresh_interval: 2s\n"
        )

    def start(self) -> None:
        exe = require_tool("prometheus", APT_HINT)
        conf = self.root / "conf" / "prometheus.yml"
        conf.parent.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        conf.write_text(self.config())
        for name, targets, labels in self.static_targets:
            write_targets(self.targets_dir, name, list(targets), dict(labels))
        self.process.start([
            exe, f"--config.file={conf}",
            f"--storage.tsdb.path={self.root / 'prometheus' / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--storage.tsdb.retention.time=2d",
        ])

    def ready(self) -> bool:
        return http_ok(f"http://{self.host}:{self.port}/-/ready")


def write_targets(targets_dir: Path, name: str, targets: list[str],
                  labels: dict[str, str]) -> None:
    """Atomically write ``targets_dir/<name>.json``, a file_sd target group Prometheus reads."""
    targets_dir.mkdir(parents=True, exist_ok=True)
    tmp = targets_dir / f".{name}.json.tmp"
    tmp.write_text(json.dumps([{"targets": targets, "labels": labels}]))
    tmp.replace(targets_dir / f"{name}.json")


@dataclass(frozen=True)
class AlertmanagerServer:
    """Alertmanager on loopback (no clustering), posting alerts to the fraudstream API webhook."""

    root: Path
    host: str
    port: int
    webhook_url: str
    group_wait: str = "1s"
    group_interval: str = "5s"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("alertmanager", self.root / "run")

    def config(self) -> str:
        return (
            "route:\n"
            "  receiver: fraudstream-webhook\n"
            "  group_by: ['alertname']\n"
            f"  group_wait: {self.group_wait}\n"
            f"  group_interval: {self.group_interval}\n"
            "  repeat_interval: 1h\n"
            "receivers:\n"
            "  - name: fraudstream-webhook\n"
            "    webhook_configs:\n"
            f"      - url: '{self.webhook_url}'\n"
            "        send_resolved: true\n"
        )

    def start(self) -> None:
        exe = require_tool("prometheus-alertmanager", APT_HINT)
        conf = self.root / "conf" / "alertmanager.yml"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(self.config())
        self.process.start([
            exe, f"--config.file={conf}", f"--storage.path={self.root / 'alertmanager'}",
            f"--web.listen-address={self.host}:{self.port}", "--cluster.listen-address=",
        ])

    def ready(self) -> bool:
        return http_ok(f"http://{self.host}:{self.port}/-/ready")
