"""Static checks of the Docker Compose deployment (docker-compose.yml, deploy/docker, grafana).

No Docker engine is needed: ``docker-compose config`` validates and interpolates the file
client-side. The checks: the file is valid, it refuses to render without its secrets, every
long-running service has a healthcheck, nothing is published beyond the host's loopback, the
host-network variant binds only 127.0.0.1, and every Grafana panel queries something. The
deployment itself is built and run by tests/compose (``make test-compose``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fraudstream.monitoring.dashboard import grafana
from fraudstream.monitoring.dashboard.panels import PANELS

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "fraudstream.json"
DATASOURCE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "docker" / "prometheus.yml"

#: Variables the compose file requires (``${VAR:?message}``), with throwaway test values.
REQUIRED_ENV = {
    "FRAUDSTREAM_SIGNING_KEY": "test-signing-key",
    "FRAUDSTREAM_API_TOKEN": "test-api-token-0123",
    "FRAUDSTREAM_REDIS_PASSWORD": "test-redis-password-0123",
    "GRAFANA_ADMIN_PASSWORD": "test-grafana-password",
}
SERVICES = {
    "kafka",
    "redis",
    "init",
    "workers",
    "api",
    "prometheus",
    "alertmanager",
    "loadgen",
    "grafana",
}
APP_SERVICES = ("init", "workers", "api", "loadgen")
#: One-shot services: no healthcheck.
ONE_SHOT = {"init", "loadgen"}
#: Worker slots the supervisor of the `workers` service runs (--workers 2).
SLOTS = (1, 2)
WORKER_WEB_PORT = 6066  # Settings.worker_web_port: the worker in slot N listens on 6066 + N.
SUPERVISOR_PORT = 6065  # Settings.supervisor_port.
LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def compose_exe() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "the `docker-compose` command is missing: run `make setup` "
            "(installs the docker-compose package)",
            pytrace=False,
        )
    return exe


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # docker-compose reads <project>/.env by default; a developer's .env must not supply the
    # secrets these tests leave unset.
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


def run_compose(
    exe: str, env_file: Path, *args: str, unset: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in REQUIRED_ENV and not k.startswith("COMPOSE_")
    }
    env.update({k: v for k, v in REQUIRED_ENV.items() if k != unset})
    return subprocess.run(
        [exe, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def load_yaml(text: str, compose_exe: str) -> Any:
    """Parse YAML with PyYAML, borrowing docker-compose's interpreter when this venv lacks it."""
    try:
        import yaml
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    # docker-compose 1.x is a Python program that depends on PyYAML: use its interpreter.
    with open(compose_exe, "rb") as f:
        first_line = f.readline().decode(errors="replace")
    if not (first_line.startswith("#!") and "python" in first_line):
        pytest.fail(
            f"cannot parse YAML: PyYAML is not installed and {compose_exe} is not a "
            "Python docker-compose; run `make setup`",
            pytrace=False,
        )
    interpreter = first_line[2:].split()
    out = subprocess.run(
        [
            *interpreter,
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def config(compose_exe: str, empty_env_file: Path) -> dict[str, Any]:
    """The interpolated, normalised compose model (`docker-compose config`)."""
    result = run_compose(compose_exe, empty_env_file, "config")
    assert result.returncode == 0, result.stderr
    model = load_yaml(result.stdout, compose_exe)
    assert isinstance(model, dict)
    return model


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return config["services"]


def test_config_is_valid_with_required_env(compose_exe: str, empty_env_file: Path) -> None:
    result = run_compose(compose_exe, empty_env_file, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_config_fails_naming_the_missing_signing_key(
    compose_exe: str, empty_env_file: Path
) -> None:
    result = run_compose(
        compose_exe, empty_env_file, "config", "-q", unset="FRAUDSTREAM_SIGNING_KEY"
    )
    assert result.returncode != 0, "config rendered without FRAUDSTREAM_SIGNING_KEY"
    assert "FRAUDSTREAM_SIGNING_KEY" in result.stdout + result.stderr


def test_every_secret_is_required_without_default() -> None:
    # Each ``${VAR:?message}`` makes compose refuse to render while VAR is unset or empty; the
    # signing key's case runs for real above, the others are the same construct.
    text = COMPOSE_FILE.read_text()
    for variable in REQUIRED_ENV:
        assert "${" + variable + ":?" in text, variable
        assert "${" + variable + ":-" not in text and "${" + variable + "}" not in text, variable


def test_topology(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            continue
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), name
        test = check.get("test")
        assert test and test != ["NONE"], f"{name} has no healthcheck"


def test_depends_on_waits_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on must use conditions"
        for dep, spec in deps.items():
            expected = "service_completed_successfully" if dep == "init" else "service_healthy"
            assert spec.get("condition") == expected, f"{name} -> {dep}"
            if expected == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits on {dep}'s health"
    assert set(services["workers"]["depends_on"]) == {"kafka", "redis", "init"}


def _published_host_ips(ports: list[Any]) -> Iterator[str]:
    """The host address of every published port; "" means every interface.

    Any ``ports`` entry publishes, even without a host port (Docker then picks one).
    """
    for port in ports:
        if isinstance(port, dict):  # long syntax (Compose v2 output)
            yield str(port.get("host_ip") or "")
            continue
        parts = str(port).split("/")[0].split(":")  # [ip:][published:]target
        yield ":".join(parts[:-2]).strip("[]")


def test_published_ports_bind_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    published = {}
    for name, service in services.items():
        ips = list(_published_host_ips(service.get("ports") or []))
        assert all(ip == LOOPBACK for ip in ips), f"{name} publishes beyond loopback: {ips}"
        published[name] = ips
    assert {name for name, ips in published.items() if ips} == {
        "kafka",  # its host listener only
        "api",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert [str(p).split("/")[0] for p in services["kafka"]["ports"]] in (
        ["127.0.0.1:29092:29092"], [])  # long syntax is checked by the loop above
    env = services["kafka"]["environment"]
    assert "HOST://127.0.0.1:29092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_app_services_share_the_settings_env(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["FRAUDSTREAM_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert env["FRAUDSTREAM_BIND_HOST"] == "0.0.0.0", name
        redis = f"redis://:{REQUIRED_ENV['FRAUDSTREAM_REDIS_PASSWORD']}@redis:6379/0"
        assert env["FRAUDSTREAM_REDIS_URL"] == redis, name
        assert env["FRAUDSTREAM_MODEL_STORES"].split(",")[1] == redis, name
        assert env["FRAUDSTREAM_SIGNING_KEY"] == REQUIRED_ENV["FRAUDSTREAM_SIGNING_KEY"], name
        assert env["FRAUDSTREAM_API_TOKEN"] == REQUIRED_ENV["FRAUDSTREAM_API_TOKEN"], name
        assert env["FRAUDSTREAM_API_TRUST_LOOPBACK"] == "0", name
        assert env["FRAUDSTREAM_MODEL_STORES"].split(",")[0] == "kafka:", name
        assert any(str(v).startswith("models:/app/artifacts") for v in services[name]["volumes"])


def test_worker_ports_match_healthchecks_and_scrape_targets(
    services: dict[str, dict[str, Any]], compose_exe: str
) -> None:
    prometheus = load_yaml(PROMETHEUS_CONFIG.read_text(), compose_exe)
    targets = {
        target
        for job in prometheus["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert services["workers"]["command"][:2] == ["fraudstream", "supervise"]
    check = " ".join(services["workers"]["healthcheck"]["test"])
    assert "FRAUDSTREAM_SUPERVISOR_PORT:-6065" in check and "/metrics" in check
    for slot in SLOTS:
        assert f"workers:{WORKER_WEB_PORT + slot}" in targets
    assert f"workers:{SUPERVISOR_PORT}" in targets
    assert "api:8000" in targets


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if panel.get("type") == "row":
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


def test_dashboard_panels_all_query_prometheus(compose_exe: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] == 39
    panels = list(_panels(dashboard["panels"]))
    assert panels
    datasource = load_yaml(DATASOURCE.read_text(), compose_exe)["datasources"][0]
    for panel in panels:
        exprs = [t.get("expr", "").strip() for t in panel.get("targets", [])]
        assert any(exprs), f"panel {panel.get('title')!r} has no target with an expr"
        assert panel["datasource"]["uid"] == datasource["uid"], panel.get("title")


def test_grafana_dashboard_has_the_live_pages_panels_and_queries() -> None:
    # The live page (/dashboard) and Grafana show the same panels with the same PromQL (rate
    # windows left to Grafana): both come from monitoring/dashboard/panels.py, and the
    # committed JSON is generated from it.
    dashboard = json.loads(DASHBOARD.read_text())
    shown = [(p["title"], [(t["expr"], t["legendFormat"]) for t in p["targets"]])
             for p in _panels(dashboard["panels"])]
    defined = [(p.title, [(grafana.grafana_expr(q.expr), q.legend) for q in p.queries])
               for p in PANELS]
    assert shown == defined, ("run `python -m fraudstream.monitoring.dashboard.grafana` to "
                              "regenerate")
    assert DASHBOARD.read_text() == grafana.render(), (
        "deploy/grafana/dashboards/fraudstream.json is out of date: run "
        "`python -m fraudstream.monitoring.dashboard.grafana`")


def test_grafana_panels_fit_the_grid_without_overlapping() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in _panels(json.loads(DASHBOARD.read_text())["panels"]):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_compose_scrape_targets_carry_the_labels_the_dashboards_select(compose_exe: str) -> None:
    prometheus = load_yaml(PROMETHEUS_CONFIG.read_text(), compose_exe)
    labels = {target: static.get("labels", {})
              for job in prometheus["scrape_configs"]
              for static in job.get("static_configs", [])
              for target in static["targets"]}
    for slot in SLOTS:
        assert labels[f"workers:{WORKER_WEB_PORT + slot}"]["component"] == "worker"
    assert labels[f"workers:{SUPERVISOR_PORT}"]["component"] == "supervisor"
    assert labels["api:8000"]["component"] == "api"
    assert all("app" in target_labels for target_labels in labels.values())


def test_redis_requires_a_password_kept_out_of_its_arguments(
        services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    password = REQUIRED_ENV["FRAUDSTREAM_REDIS_PASSWORD"]
    assert redis["environment"]["REDIS_PASSWORD"] == password
    script = " ".join(redis["command"])
    assert "redis-server -" in script and 'requirepass "$$REDIS_PASSWORD"' in script
    assert password not in script and password not in " ".join(redis["healthcheck"]["test"])
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])


def test_prometheus_cannot_be_shut_down_over_http(services: dict[str, dict[str, Any]]) -> None:
    assert "--web.enable-lifecycle" not in services["prometheus"]["command"]


def test_alertmanager_sends_the_api_token_from_a_file_it_writes_at_start(
        services: dict[str, dict[str, Any]], compose_exe: str) -> None:
    for name in ("alertmanager.yml", "alertmanager.host.yml"):
        config = load_yaml((ROOT / "deploy" / "docker" / name).read_text(), compose_exe)
        hook = config["receivers"][0]["webhook_configs"][0]
        assert hook["http_config"]["authorization"] == {
            "type": "Bearer", "credentials_file": "/run/alertmanager/api-token"}, name
    service = services["alertmanager"]
    script = " ".join(service["command"])
    assert "/run/alertmanager/api-token" in script and "umask 077" in script
    token = REQUIRED_ENV["FRAUDSTREAM_API_TOKEN"]
    assert token not in script
    assert any(str(t).startswith("/run/alertmanager") for t in service["tmpfs"])


def test_the_host_network_variant_binds_only_loopback_and_publishes_nothing(
        compose_exe: str, tmp_path: Path) -> None:
    from fraudstream.deploy.docker.images import host_compose_file

    env = {k: v for k, v in os.environ.items()
           if k not in REQUIRED_ENV and not k.startswith("COMPOSE_")}
    env.update(REQUIRED_ENV)
    model = load_yaml(host_compose_file(tmp_path / "host.yml", env).read_text(), compose_exe)
    assert (tmp_path / "host.yml").stat().st_mode & 0o077 == 0, "it holds the secrets"
    assert set(model["services"]) == SERVICES
    for name, service in model["services"].items():
        if name == "grafana":
            continue  # its own profile, not part of the test deployment
        assert service["network_mode"] == "host", name
        assert "ports" not in service, name
        rendered = json.dumps([service.get("environment"), service.get("command")])
        assert "0.0.0.0" not in rendered, f"{name} binds beyond loopback"
    app_env = model["services"]["workers"]["environment"]
    assert app_env["FRAUDSTREAM_BIND_HOST"] == LOOPBACK
    assert app_env["FRAUDSTREAM_BOOTSTRAP_SERVERS"].startswith(LOOPBACK)
    kafka_env = model["services"]["kafka"]["environment"]
    assert all(listener.split("//")[1].startswith(LOOPBACK)
               for listener in kafka_env["KAFKA_LISTENERS"].split(","))
    prometheus = load_yaml((ROOT / "deploy" / "docker" / "prometheus.host.yml").read_text(),
                           compose_exe)
    assert all(t.startswith(LOOPBACK) for job in prometheus["scrape_configs"]
               for static in job["static_configs"] for t in static["targets"])
