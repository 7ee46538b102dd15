"""/ready's restore progress, read from Faust's recovery service (faked here)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fraudstream.settings import Settings
from fraudstream.workers.pool import WorkerProcess
from fraudstream.workers.restore_status import RestoreWatch
from fraudstream.workers.supervisor import Overview


class FakeRecovery:
    """The names of faust.tables.recovery.Recovery that RestoreWatch reads."""

    def __init__(self) -> None:
        self.in_recovery = False
        self.remaining = 0

    def active_remaining_total(self) -> int:
        return self.remaining


def test_restore_progress_counts_records_left_and_applied_in_this_restore() -> None:
    recovery = FakeRecovery()
    watch = RestoreWatch(SimpleNamespace(tables=SimpleNamespace(recovery=recovery)))
    assert watch.status().to_json() == {"restoring": False, "restore": None}
    recovery.in_recovery, recovery.remaining = True, 0  # highwaters not read yet
    assert watch.status().to_json() == {"restoring": True,
                                        "restore": {"remaining": 0, "done": 0}}
    recovery.remaining = 30_000
    assert watch.status().to_json()["restore"] == {"remaining": 30_000, "done": 0}
    recovery.remaining = 12_000
    assert watch.status().to_json()["restore"] == {"remaining": 12_000, "done": 18_000}
    recovery.in_recovery = False
    assert not watch.status().restoring
    recovery.in_recovery, recovery.remaining = True, 500  # a later rebalance: counts anew
    assert watch.status().to_json()["restore"] == {"remaining": 500, "done": 0}


def test_an_app_without_the_recovery_names_reads_as_not_restoring() -> None:
    assert not RestoreWatch(SimpleNamespace()).status().restoring


def test_the_supervisor_reads_the_body_of_a_503_ready_answer(tmp_path: Path) -> None:
    body = {"ready": False, "restoring": True, "restore": {"remaining": 7, "done": 3}}

    class NotReady(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = json.dumps(body).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotReady)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        settings = Settings(state_dir=tmp_path, worker_web_port=int(port) - 1)
        assert WorkerProcess(settings, index=1).readiness(timeout=5) == body
    finally:
        server.shutdown()
        server.server_close()


def test_the_live_line_shows_lag_restores_and_a_storm() -> None:
    quiet = Overview(lag=0, restoring={}, held=[], failovers=0)
    assert quiet.line() == "lag 0"
    busy = Overview(lag=123_456, restoring={2: 30_000, 1: None}, held=[2], failovers=4)
    assert busy.line() == ("lag 123,456 | restoring slot 1 (? left), slot 2 (30,000 left) | "
                           "failovers 4 | FAILOVER STORM: not replacing slot 2")
    assert Overview(lag=None, restoring={}, held=[], failovers=0).line() == "lag ?"
