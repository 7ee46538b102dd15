"""The hostile-input list replayed with ``fraudstream produce --envelopes`` into supervised workers.

Each line of tests/data/hostile_records.jsonl (76 kinds, among them a 600 KB key, a record on
the wrong partition, a card with 20,000 transactions in a day) must end in exactly one of
``scores`` or ``transactions.dlq`` with the outcome the list names; the ledger must balance,
and no worker may exit, hang or be replaced.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from fraudstream.commands.produce_cmd import envelope_records
from fraudstream.ledger import Ledger
from fraudstream.settings import Settings
from fraudstream.streaming import TopicReader
from fraudstream.workers.pool import settings_env
from fraudstream.workers.supervisor import Supervisor
from fraudstream.workers.topics import ensure_topics
from tests.unit.workers.test_hostile_inputs import HOSTILE, expectations

pytestmark = pytest.mark.integration



async def read_outputs(settings: Settings, expected: int, timeout: float
                       ) -> list[tuple[str, bytes, int]]:
    """(kind, value, timestamp) of every output, once ``expected`` arrived (or the timeout)."""
    kinds = {settings.topic_scores: "scores", settings.topic_dlq: "dlq"}
    found: list[tuple[str, bytes, int]] = []
    async with TopicReader(settings.kafka_bootstrap, list(kinds)) as reader:
        deadline = time.monotonic() + timeout
        while len(found) < expected and time.monotonic() < deadline:
            found += [(kinds[t], v or b"", ts) for t, _k, v, ts in await reader.poll(0.5)]
        # Linger: a second output of any record would show up now.
        found += [(kinds[t], v or b"", ts) for t, _k, v, ts in await reader.poll(3.0)]
    return found


def test_hostile_records_each_end_once_where_expected_and_no_worker_restarts(
        settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings)
    supervisor = Supervisor(settings, workers=2, standbys=0)
    supervisor.start()
    thread = None
    try:
        supervisor.wait_ready(timeout=180)
        pids = {slot.index: slot.worker.proc.pid for slot in supervisor.slots
                if slot.worker.proc is not None}
        thread = supervisor.run_in_thread()
        report = tmp_path / "sent.jsonl"
        produced = subprocess.run(
            [sys.executable, "-m", "fraudstream.cli", "produce", "--from", str(HOSTILE),
             "--envelopes", "--report", str(report)],
            env=settings_env(settings), capture_output=True, text=True, timeout=300,
            check=False)
        assert produced.returncode == 0, produced.stderr
        sent = [orjson.loads(line) for line in report.read_bytes().splitlines()]
        outputs = asyncio.run(read_outputs(settings, len(sent), timeout=180))

        # The ledger: every produced record by position, every output.
        ledger = Ledger()
        values = {(e.line, e.copy): e.value for e in envelope_records(HOSTILE, time.time())}
        for s in sent:
            ledger.produced(values[(s["line"], s["copy"])] or b"", s["partition"], s["offset"])
        outcome: dict[tuple[int, int], list[str]] = {}
        for kind, value, ts in outputs:
            ledger.observe(kind, value, ts, ts)
            body: dict[str, Any] = orjson.loads(value)
            assert len(value) <= settings.max_message_bytes
            outcome.setdefault((body["partition"], body["offset"]), []).append(
                "scored" if kind == "scores" else body["error"])
        cases = expectations()
        wrong = {}
        for s in sent:
            case, expect = cases[s["line"]]
            got = outcome.get((s["partition"], s["offset"]), [])
            if got != [expect]:
                wrong[f"{case}#{s['copy']}"] = got
        shown = dict(list(wrong.items())[:20])
        assert not wrong, f"records that did not end once where expected: {shown}"
        assert ledger.lost() == 0 and ledger.duplicates == 0
        assert ledger.scored + ledger.dead_letters == len(sent)
        assert len(sent) > 20_000

        # No worker exited, hung or was replaced.
        supervisor.check_once()
        assert supervisor.events == [], [e.__dict__ for e in supervisor.events]
        assert {slot.index: slot.worker.proc.pid for slot in supervisor.slots
                if slot.worker.proc is not None} == pids
        assert all(slot.worker.alive() for slot in supervisor.slots)
    finally:
        supervisor.request_stop()
        if thread is not None:
            thread.join(10)
        supervisor.stop()
        for slot in supervisor.slots:
            print(f"--- {slot.worker.name} log tail\n{slot.worker.log_tail(30)}")
