"""The supervisor's metrics endpoint and scrape targets live exactly as long as it does."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

from fraudstream.settings import Settings
from fraudstream.workers.supervisor import Supervisor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_stop_frees_the_port_and_unlists_the_targets(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, supervisor_port=free_port(), app_id="unit-app")
    targets = tmp_path / "prometheus" / "targets" / "supervisor-unit-app.json"
    servers = []  # kept: the port must be let go by stop(), not by garbage collection
    for _ in range(2):  # a second supervisor on the same port: the first one let it go
        supervisor = Supervisor(settings, workers=1, standbys=0)
        servers.append(supervisor.serve_metrics())
        url = f"http://127.0.0.1:{settings.supervisor_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert b"fraudstream_failovers_total" in resp.read()
        listed = json.loads(targets.read_text())
        assert listed[0]["labels"] == {"component": "supervisor", "app": "unit-app"}
        supervisor.stop()
        assert not targets.exists()
