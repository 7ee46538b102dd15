"""The Kubernetes base (deploy/kubernetes): validated offline, generated parts up to date.

Built-in kinds are checked by ``kubernetes-validate --strict`` (its bundled schemas, no cluster
and no network); it only warns on the Prometheus Operator's kinds, so those are checked here
against the JSON Schemas kept in deploy/kubernetes/schemas, and their rule groups by promtool.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fraudstream.deploy.kubernetes import generate
from fraudstream.settings import Settings
from fraudstream.workers.health import HealthPolicy

ROOT = Path(__file__).resolve().parents[3]
K8S_DIR = ROOT / "deploy" / "kubernetes"
SCHEMA_DIR = K8S_DIR / "schemas"
RULES_DIR = ROOT / "monitoring" / "rules"
#: The oldest and the newest Kubernetes the base is validated against (kubernetes-validate
#: 1.37 ships the schemas of 1.25 to 1.37).
KUBERNETES_VERSIONS = ("1.25", "1.37")
OPERATOR_API = "monitoring.coreos.com/v1"
SECRET_NAME = "fraudstream-secrets"


def manifest_files() -> list[Path]:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    return [K8S_DIR / name for name in kustomization["resources"]]


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_documents() -> list[dict[str, Any]]:
    return [d for path in manifest_files() for d in documents(path)]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in all_documents()
             if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def workloads() -> list[dict[str, Any]]:
    return [d for d in all_documents() if d["kind"] in ("StatefulSet", "Deployment", "Job")]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return containers[0]


def configured_settings() -> Settings:
    """The settings every pod gets from the ConfigMap (secrets aside)."""
    return Settings.from_env(one("ConfigMap", "fraudstream-settings")["data"])


def port_named(workload: dict[str, Any], name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container(workload).get("ports", [])}
    assert name in ports, f"{workload['metadata']['name']} has no port named {name}"
    return int(ports[name])


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) applied to ``labels``."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        ok = {"In": value in expr.get("values", []),
              "NotIn": value not in expr.get("values", []),
              "Exists": value is not None, "DoesNotExist": value is None}[op]
        if not ok:
            return False
    return True


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


# ---- the base as a whole ----

def test_kustomization_lists_every_manifest_of_the_folder() -> None:
    listed = {p.name for p in manifest_files()}
    present = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def kubernetes_validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.fail("kubernetes-validate is missing: `make setup` installs the dev extras "
                    "(pip install -e '.[dev]')", pytrace=False)
    versions = [arg for v in KUBERNETES_VERSIONS for arg in ("-k", v)]
    return subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", *versions,
                           *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_builtin_resources_pass_strict_validation_without_a_warning() -> None:
    builtin = [p for p in manifest_files()
               if all(d["apiVersion"] != OPERATOR_API for d in documents(p))]
    result = kubernetes_validate(*builtin)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    # A kind it has no schema for is only a warning (exit 0): here it fails.
    assert not re.search(r"^(WARN|ERROR|FATAL)", out, re.MULTILINE), out
    passed = [line for line in out.splitlines() if line.startswith("INFO") and " passed " in line]
    resources = sum(len(documents(p)) for p in builtin)
    assert resources == 7
    assert len(passed) == resources * len(KUBERNETES_VERSIONS), out


def test_strict_validation_fails_on_a_misspelt_field(tmp_path: Path) -> None:
    statefulset = copy.deepcopy(one("StatefulSet"))
    probe = container(statefulset).pop("livenessProbe")
    container(statefulset)["livenesProbe"] = probe
    broken = tmp_path / "statefulset.yaml"
    broken.write_text(yaml.safe_dump(statefulset))
    result = kubernetes_validate(broken)
    assert result.returncode != 0
    assert "ERROR" in result.stdout and "livenesProbe" in result.stdout


def test_kubernetes_validate_only_warns_on_operator_kinds() -> None:
    """Why the operator's kinds are checked against schemas of our own, below."""
    result = kubernetes_validate(K8S_DIR / "pod-monitor.yaml")
    assert result.returncode == 0
    assert "WARN" in result.stdout and "PodMonitor" in result.stdout


# ---- generated monitoring resources ----

def test_committed_generated_files_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0, capsys.readouterr().err


def test_generator_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check", "--out-dir", str(tmp_path)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert generate.main(["--out-dir", str(tmp_path)]) == 0
    assert generate.main(["--check", "--out-dir", str(tmp_path)]) == 0
    (tmp_path / "pod-monitor.yaml").write_text("# edited by hand\n")
    assert generate.main(["--check", "--out-dir", str(tmp_path)]) == 1


def test_prometheus_rule_holds_the_local_stack_rule_groups_unchanged() -> None:
    expected = [g for path in sorted(RULES_DIR.glob("*.yml"))
                for g in yaml.safe_load(path.read_text())["groups"]]
    assert expected
    assert one("PrometheusRule")["spec"]["groups"] == expected


def test_a_group_name_used_twice_is_refused(tmp_path: Path) -> None:
    group = {"groups": [{"name": "g", "rules": [{"record": "r", "expr": "rate(x[1m])"}]}]}
    for name in ("a.yml", "b.yml"):
        (tmp_path / name).write_text(yaml.safe_dump(group))
    with pytest.raises(ValueError, match="'g'"):
        generate.rule_groups(tmp_path)


def test_scrape_interval_is_a_quarter_of_the_shortest_rule_window() -> None:
    rules: list[dict[str, Any]] = [{"expr": "rate(x[2m])"}, {"expr": "delta(y[1h])"},
                                   {"expr": "max_over_time(z[10m:1m])"}]
    assert generate.scrape_interval([{"name": "g", "rules": rules}]) == "30s"
    rules.append({"expr": "increase(w[20s])"})
    assert generate.scrape_interval([{"name": "g", "rules": rules}]) == "5s"
    # The committed rules' shortest window is 1m: rate(...[1m]) in the latency recordings.
    endpoint = one("PodMonitor")["spec"]["podMetricsEndpoints"][0]
    assert endpoint["interval"] == "15s"



def test_rule_groups_of_the_prometheus_rule_pass_promtool(promtool: str, tmp_path: Path) -> None:
    groups = one("PrometheusRule")["spec"]["groups"]
    rules = tmp_path / "groups.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(g["rules"]) for g in groups)
    assert f"SUCCESS: {count} rules found" in result.stdout


def schema_for(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (SCHEMA_DIR / f"{kind.lower()}-monitoring-v1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema_for(document["kind"]))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)]


def test_operator_resources_match_the_schemas_kept_in_the_repository() -> None:
    operator_docs = [d for d in all_documents() if d["apiVersion"] == OPERATOR_API]
    assert sorted(d["kind"] for d in operator_docs) == ["PodMonitor", "PrometheusRule"]
    for document in operator_docs:
        assert schema_errors(document) == [], document["kind"]


def _without_selector(d: dict[str, Any]) -> None:
    del d["spec"]["selector"]


def _snake_case_relabel(d: dict[str, Any]) -> None:
    relabel = d["spec"]["podMetricsEndpoints"][0]["relabelings"][0]
    relabel["target_label"] = relabel.pop("targetLabel")


def _bad_interval(d: dict[str, Any]) -> None:
    d["spec"]["podMetricsEndpoints"][0]["interval"] = "15 seconds"


def _bad_for(d: dict[str, Any]) -> None:
    next(r for r in d["spec"]["groups"][0]["rules"] if "for" in r)["for"] = "2 minutes"


def _record_and_alert(d: dict[str, Any]) -> None:
    d["spec"]["groups"][0]["rules"][0]["alert"] = "Both"


def _no_expr(d: dict[str, Any]) -> None:
    del d["spec"]["groups"][0]["rules"][0]["expr"]


def _nameless_group(d: dict[str, Any]) -> None:
    del d["spec"]["groups"][0]["name"]


@pytest.mark.parametrize(("kind", "damage"), [
    ("PodMonitor", _without_selector), ("PodMonitor", _snake_case_relabel),
    ("PodMonitor", _bad_interval), ("PrometheusRule", _bad_for),
    ("PrometheusRule", _record_and_alert), ("PrometheusRule", _no_expr),
    ("PrometheusRule", _nameless_group),
])
def test_operator_schemas_reject_what_the_operator_rejects(kind: str, damage: Any) -> None:
    document = copy.deepcopy(one(kind))
    damage(document)
    assert schema_errors(document)


def test_pod_monitor_gives_targets_the_local_stack_labels() -> None:
    """component and app, as workers/pool.py writes them to the local stack's file_sd."""
    spec = one("PodMonitor")["spec"]
    endpoint = spec["podMetricsEndpoints"][0]
    scraped = {w["metadata"]["name"]: w for w in workloads()
               if selects(spec["selector"], pod_labels(w))}
    assert set(scraped) == {"fraudstream-worker", "fraudstream-api"}
    app_id = configured_settings().app_id
    assert app_id == "fraudstream-scoring"
    expected = {"fraudstream-worker": {"component": "worker", "app": app_id},
                "fraudstream-api": {"component": "api", "app": app_id}}
    for name, workload in scraped.items():
        port_named(workload, endpoint["port"])
        # Prometheus' pod discovery: every pod label as __meta_kubernetes_pod_label_<sanitized>.
        meta = {"__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v
                for k, v in pod_labels(workload).items()}
        target = {r["targetLabel"]: ";".join(meta.get(s, "") for s in r["sourceLabels"])
                  for r in endpoint["relabelings"]}
        assert target == expected[name]
    assert endpoint["path"] == "/metrics"


# ---- workers ----

def test_worker_pod_name_is_its_static_group_member_id() -> None:
    statefulset = one("StatefulSet", "fraudstream-worker")
    worker = container(statefulset)
    command = worker["command"]
    assert command[:2] == ["fraudstream", "worker"]
    assert command[command.index("--instance-id") + 1] == "$(POD_NAME)"
    env = {e["name"]: e for e in worker["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    service = one("Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"


def test_worker_listens_where_its_probes_and_scrapes_go() -> None:
    statefulset = one("StatefulSet", "fraudstream-worker")
    command = container(statefulset)["command"]
    index = int(command[command.index("--index") + 1])
    settings = configured_settings()
    # worker N listens on FRAUDSTREAM_WORKER_WEB_PORT + N: 6066 + 1.
    assert settings.worker_web_port + index == 6067 == port_named(statefulset, "http")
    # On the pod IP, where the kubelet and Prometheus connect, not on loopback.
    assert settings.bind_host == "0.0.0.0"


def test_worker_probes_keep_restoring_and_busy_workers_alive() -> None:
    worker = container(one("StatefulSet", "fraudstream-worker"))
    live, ready, start = (worker["livenessProbe"], worker["readinessProbe"],
                          worker["startupProbe"])
    assert ready["httpGet"] == {"path": "/ready", "port": "http"}
    # /ready is 503 while restoring: never the liveness check.
    assert live["httpGet"] == {"path": "/health", "port": "http"}
    assert start["httpGet"] == {"path": "/health", "port": "http"}
    policy = HealthPolicy()
    assert live["timeoutSeconds"] > policy.probe_timeout_s
    # A minute without any /health answer before a restart, twelve times the supervisor's 5 s.
    assert live["periodSeconds"] * live["failureThreshold"] >= 60 >= 12 * policy.hang_s
    assert start["periodSeconds"] * start["failureThreshold"] >= 300


def test_worker_drain_fits_in_the_termination_grace_period() -> None:
    spec = one("StatefulSet", "fraudstream-worker")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > HealthPolicy().drain_timeout_s


def test_disruption_budget_covers_exactly_the_workers() -> None:
    pdb = one("PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1
    selected = [w["metadata"]["name"] for w in workloads()
                if selects(pdb["selector"], pod_labels(w))]
    assert selected == ["fraudstream-worker"]


# ---- API, services ----

def test_api_is_a_deployment_behind_a_service() -> None:
    api = one("Deployment", "fraudstream-api")
    assert container(api)["command"] == ["fraudstream", "api"]
    assert configured_settings().api_port == port_named(api, "http") == 8000
    service = one("Service", "fraudstream-api")
    assert {w["metadata"]["name"] for w in workloads()
            if selects({"matchLabels": service["spec"]["selector"]}, pod_labels(w))} == \
        {"fraudstream-api"}
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    probes = container(api)
    # /health is 503 while Kafka is unreachable: readiness only, a restart would not help.
    assert probes["readinessProbe"]["httpGet"]["path"] == "/health"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/metrics"


def test_every_service_selects_pods_with_its_target_port() -> None:
    for service in (d for d in all_documents() if d["kind"] == "Service"):
        selector = {"matchLabels": service["spec"]["selector"]}
        targets = [w for w in workloads() if selects(selector, pod_labels(w))]
        assert len(targets) == 1, service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            port_named(targets[0], port["targetPort"])


# ---- settings, secrets, hardening ----

def test_configmap_holds_only_settings_the_program_knows() -> None:
    data = one("ConfigMap", "fraudstream-settings")["data"]
    known = {name for name, _default, _type in Settings.describe()}
    assert set(data) - known == set()
    configured_settings()  # every value converts to its field's type


def test_secrets_are_referenced_never_inline() -> None:
    assert [d for d in all_documents() if d["kind"] == "Secret"] == []
    data = one("ConfigMap", "fraudstream-settings")["data"]
    secret_vars = {"FRAUDSTREAM_SIGNING_KEY", "FRAUDSTREAM_API_TOKEN"}
    assert secret_vars & set(data) == set()
    used_keys = set()
    for workload in workloads():
        for var in container(workload).get("env", []):
            if var["name"] in secret_vars:
                assert "value" not in var
                ref = var["valueFrom"]["secretKeyRef"]
                assert ref["name"] == SECRET_NAME
                used_keys.add(ref["key"])
    assert used_keys == {"signing-key", "api-token"}
    readme = (ROOT / "README.md").read_text()
    assert f"kubectl create secret generic {SECRET_NAME}" in readme
    assert all(f"--from-literal={key}=" in readme for key in used_keys)


def service_link_variables(service: dict[str, Any]) -> set[str]:
    """The variables Kubernetes injects for a Service into pods with service links on.

    Docker-links style, for services with a cluster IP: <NAME>_SERVICE_HOST, <NAME>_SERVICE_PORT,
    <NAME>_PORT, <NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR], NAME upper-cased with - as _.
    """
    if service["spec"].get("clusterIP") == "None":
        return set()
    name = service["metadata"]["name"].upper().replace("-", "_")
    names = {f"{name}_SERVICE_HOST", f"{name}_SERVICE_PORT", f"{name}_PORT"}
    for port in service["spec"]["ports"]:
        base = f"{name}_PORT_{port['port']}_{port.get('protocol', 'TCP')}"
        names |= {base, f"{base}_PROTO", f"{base}_PORT", f"{base}_ADDR"}
    return names


def test_service_links_are_off_since_they_would_clash_with_settings() -> None:
    settings_vars = {name for name, _default, _type in Settings.describe()}
    injected = {v for d in all_documents() if d["kind"] == "Service"
                for v in service_link_variables(d)}
    # FRAUDSTREAM_API_PORT=tcp://10.0.0.7:8000 would fail Settings (not an int) in every pod.
    assert injected & settings_vars == {"FRAUDSTREAM_API_PORT"}
    for workload in workloads():
        assert workload["spec"]["template"]["spec"]["enableServiceLinks"] is False, \
            workload["metadata"]["name"]
    with pytest.raises(ValueError, match="FRAUDSTREAM_API_PORT"):
        Settings.from_env({"FRAUDSTREAM_API_PORT": "tcp://10.0.0.7:8000"})


def quantity(text: str | int) -> float:
    """A Kubernetes resource quantity (the suffixes used here) as a number."""
    value = str(text)
    for suffix, factor in (("m", 1e-3), ("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30)):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_quantity_parser() -> None:
    assert quantity("500m") == 0.5 and quantity("2") == 2 and quantity("1Gi") == 2**30


def test_every_pod_runs_non_root_read_only_with_bounded_resources() -> None:
    settings = configured_settings()
    for workload in workloads():
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        box = container(workload)
        sc = box["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        resources = box["resources"]
        for res in ("cpu", "memory"):
            assert quantity(resources["requests"][res]) <= quantity(resources["limits"][res]), name
        # The only writable places: the state dir (and the model path in it) and /tmp.
        mounts = [Path(m["mountPath"]) for m in box["volumeMounts"]]
        for path in (settings.state_dir, settings.model_path.parent, Path("/tmp")):
            assert any(path == m or m in path.parents for m in mounts), (name, path)
