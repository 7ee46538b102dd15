"""The Docker Compose deployment, built and run for real (``make test-compose``, not in
``make test``: building the images from a Debian base takes minutes on a fresh machine).

Images are built here from a Debian base made with debootstrap (no registry is reachable), the
deployment runs on the host's network bound to 127.0.0.1 (``deploy/docker/compose.host.yml``),
and the API trusts no caller without its token, loopback included, so the Alertmanager
webhook's bearer credentials are really exercised. A fresh machine has no Docker engine
running: the fixture starts ``dockerd`` and says so.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fraudstream.chaos.compose_target import ComposeRunner, workers_container
from fraudstream.chaos.runner import RunPlan
from fraudstream.chaos.scenarios import SCENARIOS
from fraudstream.deploy.docker import images
from fraudstream.deploy.local.services import http_ok
from fraudstream.settings import Settings
from tests.alerting import get_json
from tests.conftest import wait_until

pytestmark = pytest.mark.compose

#: Where compose.host.yml puts each service (127.0.0.1).
KAFKA = "127.0.0.1:19092"
PROMETHEUS = "http://127.0.0.1:19090"
API = "http://127.0.0.1:18000"
WORKER_PORTS = (16067, 16068)


@dataclass
class Deployment:
    project: str
    compose_file: Path
    env: dict[str, str]
    token: str
    build_s: float
    start_s: float

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*images.compose_command(self.compose_file), "-p", self.project,
                               *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def settings(self) -> Settings:
        """What a process on this host uses to reach the deployment."""
        return Settings.from_env({"FRAUDSTREAM_BOOTSTRAP_SERVERS": KAFKA,
                                  "FRAUDSTREAM_PROMETHEUS_PORT": "19090"})


def ready(port: int) -> bool:
    try:
        return bool(get_json(f"http://127.0.0.1:{port}/ready")["ready"])
    except (OSError, ValueError, KeyError):
        return False


def scored_total() -> float:
    body = get_json(f"{PROMETHEUS}/api/v1/query?query=sum(fraudstream_transactions_scored_total)")
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    images.ensure_engine()
    started = time.monotonic()
    images.build_images(images.BASE_TAG)
    build_s = time.monotonic() - started
    token = secrets.token_hex(24)
    env = {**os.environ,
           "FRAUDSTREAM_SIGNING_KEY": secrets.token_hex(24),
           "FRAUDSTREAM_API_TOKEN": token,
           "FRAUDSTREAM_REDIS_PASSWORD": secrets.token_hex(24),
           "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(12),
           "BASE_IMAGE": images.BASE_TAG}
    compose_file = images.host_compose_file(tmp_path_factory.mktemp("compose") / "host.yml",
                                            env)
    deployment = Deployment(f"fstest{uuid.uuid4().hex[:6]}", compose_file, env, token,
                            build_s, 0.0)
    started = time.monotonic()
    up = deployment.compose("up", "-d")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        wait_until(lambda: all(ready(p) for p in WORKER_PORTS) and http_ok(f"{API}/health"),
                   240, "the deployment's workers and API did not get ready", interval=1.0)
        deployment.start_s = time.monotonic() - started
        print(f"\ncompose: images built in {build_s:.0f} s, deployment ready in "
              f"{deployment.start_s:.0f} s (project {deployment.project})")
        yield deployment
    finally:
        logs = deployment.compose("logs", "--no-color", "--tail", "30")
        if logs.stdout:
            print(logs.stdout[-6000:])
        down = deployment.compose("down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stderr[-2000:]


def test_loadgen_traffic_is_scored_and_scraped(deployment: Deployment) -> None:
    before = scored_total()
    loadgen = deployment.compose("--profile", "load", "up", "-d", "loadgen")
    assert loadgen.returncode == 0, loadgen.stderr[-2000:]
    try:
        wait_until(lambda: scored_total() >= before + 500, 90,
                   "Prometheus saw no 500 transactions scored from the load generator",
                   interval=2.0)
    finally:
        stopped = deployment.compose("--profile", "load", "stop", "loadgen")
        assert stopped.returncode == 0, stopped.stderr[-2000:]
    print(f"compose: {scored_total() - before:.0f} load-generator transactions scored")


def test_a_failover_alert_reaches_the_api_through_its_token(deployment: Deployment) -> None:
    webhook = urllib.request.Request(f"{API}/api/alerts/webhook", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(webhook, timeout=5)
    assert refused.value.code == 401, "the webhook took a loopback caller without the token"
    pid = get_json(f"http://127.0.0.1:{WORKER_PORTS[0]}/ready")["pid"]
    container = workers_container(deployment.project)
    killed_at = time.monotonic()
    result = container.exec_run(["sh", "-c", f"kill -KILL {int(pid)}"])
    assert result.exit_code == 0, result.output

    def fired() -> bool:
        body = get_json(f"{API}/api/alerts")
        return any(a["labels"].get("alertname") == "FraudstreamWorkerFailover"
                   for a in body["firing"])

    wait_until(fired, 90, "FraudstreamWorkerFailover never reached the API's webhook",
               interval=1.0)
    print(f"compose: FraudstreamWorkerFailover at the API {time.monotonic() - killed_at:.1f} s "
          "after a worker was killed in its container")
    wait_until(lambda: all(ready(p) for p in WORKER_PORTS), 60,
               "the supervisor did not give the killed worker's slot to the standby")


@pytest.mark.parametrize("scenario", ["kill-worker", "hang-worker"])
def test_container_chaos_loses_and_repeats_nothing(deployment: Deployment,
                                                   scenario: str) -> None:
    plan = RunPlan(rate=200.0, duration_s=30.0, fault_at_s=8.0, fault_seconds=6.0,
                   customers=1000)
    report = ComposeRunner(deployment.settings(), plan, deployment.project).run(
        SCENARIOS[scenario])
    print(f"compose chaos {scenario}: produced {report.produced}, scored {report.scored}, "
          f"lost {report.lost}, duplicates {report.duplicates}, recovery "
          f"{report.recovery_seconds} s, drained {report.drained_after_heal_s} s after the "
          f"heal, p99 {report.p99_latency_ms}")
    assert report.passed and not report.skipped, report.problems
    assert report.produced == report.scored + report.dead_lettered > 0
    assert report.lost == 0 and report.duplicates == 0
