"""The dashboard's backend against a canned Prometheus on loopback: values, errors, 503, page."""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from fraudstream.api.app import create_app
from fraudstream.monitoring.dashboard import grafana
from fraudstream.monitoring.dashboard.panels import PANELS, panel
from fraudstream.monitoring.dashboard.snapshot import series_name
from fraudstream.settings import Settings

SCORED = "sum(fraudstream_transactions_scored_total)"
MODEL = "count by (version, family) (fraudstream_model_info)"
P99 = next(q.expr for q in panel("latency").queries if q.legend == "p99")

Answer = Callable[[str, dict[str, str]], tuple[int, dict[str, Any]]]


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [1700000000.0, value]} for labels, value in samples]}}


def canned(path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """A Prometheus that knows a few series; every other query has no data."""
    if path == "/api/v1/alerts":
        return 200, {"status": "success", "data": {"alerts": [
            {"labels": {"alertname": "WorkerDown", "severity": "critical"},
             "annotations": {"summary": "worker 2 is down"}, "state": "firing",
             "activeAt": "2026-11-27T08:00:00.123Z", "value": "0"},
            {"labels": {"alertname": "HighLatency"}, "annotations": {}, "state": "pending",
             "activeAt": "2026-11-27T08:01:00Z", "value": "1"}]}}
    query = params["query"]
    if path == "/api/v1/query_range":
        start, step = float(params["start"]), float(params["step"])
        values = [[start + i * step, str(i)] for i in range(3)] + [[start + 3 * step, "NaN"]]
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {}, "values": values}]}}
    if query == SCORED:
        return 200, vector(({}, "1234"))
    if query == MODEL:
        return 200, vector(({"version": "v7", "family": "logreg"}, "2"))
    if query == P99:
        return 200, vector(({}, "NaN"))  # no traffic: histogram_quantile of nothing
    if query.startswith("max(fraudstream_workers_desired"):
        return 400, {"status": "error", "errorType": "bad_data", "error": "parse error"}
    return 200, vector()


@pytest.fixture
def prometheus() -> Iterator[tuple[str, list[str]]]:
    """A canned Prometheus HTTP API on loopback; yields its URL and the paths it was asked."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            asked.append(url.path)
            status, body = canned(url.path, dict(urllib.parse.parse_qsl(url.query)))
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def client_for(prometheus_url: str) -> TestClient:
    settings = Settings(prometheus_url=prometheus_url)
    return TestClient(create_app(settings, start_background=False))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_series_names_expand_labels_like_grafana() -> None:
    assert series_name("{{feature}} ({{method}})", {"feature": "amount", "method": "psi"}) == \
        "amount (psi)"
    assert series_name("partition {{ partition }}", {"partition": "3"}) == "partition 3"
    assert series_name("p99", {"instance": "x"}) == "p99"
    assert series_name("{{missing}}", {}) == ""


def test_panel_ids_are_unique_and_every_panel_queries() -> None:
    ids = [p.id for p in PANELS]
    assert len(ids) == len(set(ids))
    assert all(p.queries and all(q.expr.strip() for q in p.queries) for p in PANELS)
    with pytest.raises(KeyError, match="no panel 'nope'"):
        panel("nope")


def test_summary_reads_every_panel_from_prometheus(prometheus: tuple[str, list[str]]) -> None:
    url, asked = prometheus
    with client_for(url) as client:
        resp = client.get("/api/dashboard/summary")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["prometheus"] == url.rstrip("/")
    assert set(body["panels"]) == {p.id for p in PANELS}
    scored = body["panels"]["scored_total"]["queries"][0]
    assert scored["series"] == [{"name": "scored", "labels": {}, "value": 1234.0}]
    model = body["panels"]["model"]["queries"][0]["series"][0]
    assert model["labels"] == {"version": "v7", "family": "logreg"} and model["value"] == 2
    latency = {q["legend"]: q["series"] for q in body["panels"]["latency"]["queries"]}
    assert latency["p99"] == [{"name": "p99", "labels": {}, "value": None}]  # NaN -> no data
    assert latency["p50"] == []
    desired = body["panels"]["supervisor"]["queries"][0]
    assert desired["series"] == [] and "parse error" in desired["error"]
    assert [(a["name"], a["state"], a["severity"], a["summary"]) for a in body["alerts"]] == [
        ("WorkerDown", "firing", "critical", "worker 2 is down"),
        ("HighLatency", "pending", "", "")]
    assert asked.count("/api/v1/alerts") == 1
    queries = sum(len(p.queries) for p in PANELS if p.kind != "alerts")
    assert asked.count("/api/v1/query") == queries


def test_series_of_a_chart_panel(prometheus: tuple[str, list[str]]) -> None:
    url, _asked = prometheus
    with client_for(url) as client:
        resp = client.get("/api/dashboard/series", params={"panel": "throughput", "minutes": 5})
        unknown = client.get("/api/dashboard/series", params={"panel": "nope"})
        too_long = client.get("/api/dashboard/series", params={"panel": "throughput",
                                                               "minutes": 600})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["panel"] == "throughput" and body["step"] == 2
    assert body["end"] - body["start"] == pytest.approx(300)
    first = body["queries"][0]
    assert first["legend"] == "scored/s"
    points = first["series"][0]["points"]
    assert [v for _t, v in points] == [0.0, 1.0, 2.0, None]
    assert len(body["queries"]) == len(panel("throughput").queries)
    assert unknown.status_code == 404 and "no panel 'nope'" in unknown.json()["detail"]
    assert too_long.status_code == 422


def test_prometheus_down_is_a_503_naming_it() -> None:
    port = closed_port()
    with client_for(f"http://127.0.0.1:{port}") as client:
        summary = client.get("/api/dashboard/summary")
        chart = client.get("/api/dashboard/series", params={"panel": "latency"})
        page = client.get("/dashboard")
    for resp in (summary, chart):
        assert resp.status_code == 503
        detail = resp.json()["detail"]
        assert detail.startswith(f"metrics unavailable: Prometheus at http://127.0.0.1:{port} "
                                 "did not answer"), detail
    assert page.status_code == 200  # the page itself still loads, and says what is wrong


def test_page_and_its_assets_are_served_without_a_token() -> None:
    with client_for("http://127.0.0.1:1") as client:
        page = client.get("/dashboard")
        script = client.get("/dashboard/static/dashboard.js")
        style = client.get("/dashboard/static/dashboard.css")
        other = client.get("/dashboard/static/index.html")
        traversal = client.get("/dashboard/static/..%2F__init__.py")
        panels = client.get("/api/dashboard/panels")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/dashboard/static/dashboard.js">' in page.text
    assert script.status_code == 200 and "/api/dashboard/summary" in script.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert other.status_code == 404 and traversal.status_code == 404
    defined = panels.json()["panels"]
    assert [p["id"] for p in defined] == [p.id for p in PANELS]
    assert defined[0]["queries"][0]["expr"] == PANELS[0].queries[0].expr


def test_prometheus_url_defaults_to_the_local_stack() -> None:
    assert Settings(prometheus_port=29090).prometheus_base_url == "http://127.0.0.1:29090"
    env = {"FRAUDSTREAM_PROMETHEUS_URL": "http://prometheus:9090/"}
    assert Settings.from_env(env).prometheus_base_url == "http://prometheus:9090"


def test_grafana_generator_writes_and_checks(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fraudstream.json"
    assert grafana.main(["--check", "--out", str(out)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert grafana.main(["--out", str(out)]) == 0
    assert grafana.main(["--check", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert [p["title"] for p in written["panels"]] == [p.title for p in PANELS]


def test_grafana_rates_use_its_rate_interval_and_periods_stay() -> None:
    assert grafana.grafana_expr(
        'sum(rate(fraudstream_decisions_total{decision="decline"}[1m])) '
        "/ sum(rate(fraudstream_decisions_total[1m]))") == (
        'sum(rate(fraudstream_decisions_total{decision="decline"}[$__rate_interval])) '
        "/ sum(rate(fraudstream_decisions_total[$__rate_interval]))")
    assert grafana.grafana_expr("sum(increase(fraudstream_failovers_total[1h]))") == \
        "sum(increase(fraudstream_failovers_total[1h]))"
    exprs = [t["expr"] for p in grafana.dashboard()["panels"] for t in p["targets"]]
    rates = [e for e in exprs if "rate(" in e]
    assert rates and all("[$__rate_interval]" in e for e in rates)
    assert not any(re.search(r"rate\([^)]*\[\d+[smh]\]", e) for e in exprs)
    assert sum("[1h]" in e for e in exprs) == 2  # failovers and refusals in the last hour


def test_empty_panels_say_why_on_the_page_and_in_grafana() -> None:
    by_id = {p.id: p for p in PANELS}
    assert "fraudstream supervise" in by_id["supervisor"].empty
    assert "FRAUDSTREAM_DRIFT_WINDOW_ROWS" in by_id["feature_drift"].empty
    assert by_id["throughput"].empty == "no data"
    from fraudstream.monitoring.dashboard.snapshot import describe

    assert describe(by_id["supervisor"])["empty"] == by_id["supervisor"].empty
    shown = {p["title"]: p["fieldConfig"]["defaults"]["noValue"]
             for p in grafana.dashboard()["panels"]}
    assert shown == {p.title: p.empty for p in PANELS}
