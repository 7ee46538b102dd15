"""The command line against the real stack: produce a JSONL file byte for byte, tail, demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from fraudstream.settings import Settings
from fraudstream.workers.pool import WorkerPool, settings_env

pytestmark = pytest.mark.integration


def cli(settings: Settings, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fraudstream.cli", *args],
                          env=settings_env(settings), capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_produce_jsonl_then_tail_scores_and_dlq(settings: Settings, one_worker: WorkerPool,
                                                tmp_path: Path) -> None:
    lines = [orjson.dumps({"transaction_id": f"cli-{i}", "timestamp": "2026-11-01T10:00:00Z",
                           "card_id": f"C{i % 3}", "merchant_id": "M1", "amount": 10.0 + i})
             for i in range(5)]
    lines.append(b'{"transaction_id": "cli-broken", "amount": ')
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    produced = cli(settings, "produce", "--from", str(source))
    assert produced.returncode == 0, produced.stderr
    assert "sent 6 records" in produced.stderr

    scores = cli(settings, "tail", "scores", "--from-beginning", "--max", "5",
                 "--idle-timeout", "60")
    assert scores.returncode == 0, scores.stderr
    ids = sorted(json.loads(line)["transaction_id"] for line in scores.stdout.splitlines())
    assert ids == [f"cli-{i}" for i in range(5)]
    dlq = cli(settings, "tail", "dlq", "--from-beginning", "--max", "1", "--idle-timeout", "60")
    record = json.loads(dlq.stdout)
    assert record["error"] == "invalid_json" and record["topic"] == settings.topic_transactions
    import base64

    assert base64.b64decode(record["payload_b64"]) == lines[-1]


def test_topics_create_then_list(settings: Settings) -> None:
    from fraudstream.workers.topics import topic_specs

    created = cli(settings, "topics", "create", timeout=60)
    assert created.returncode == 0, created.stderr
    listed = cli(settings, "topics", "list", timeout=60)
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.splitlines()
    assert {t.name for t in topic_specs(settings)} <= set(names)
    assert not any(line.startswith("missing") for line in names)


def test_cli_errors_are_one_line_with_non_zero_exit(settings: Settings, tmp_path: Path) -> None:
    missing = cli(settings, "produce", "--from", str(tmp_path / "absent.csv"))
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith("no such file")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("transaction_id,timestamp\n1,2\n")
    train = cli(settings, "train", "--data", str(bad_csv), "--out", str(tmp_path / "m.skops"))
    assert train.returncode == 2 and "missing" in train.stderr
    assert len(train.stderr.strip().splitlines()) == 1
    # An unknown --topic: aiokafka logged an error ten times a second for 30 s, then a
    # traceback (a newcomer's walkthrough, 2026-12-05).
    jsonl = tmp_path / "one.jsonl"
    jsonl.write_text('{"transaction_id": "t1"}\n')
    unknown = cli(settings, "produce", "--from", str(jsonl), "--topic", "no-such-topic",
                  timeout=60)
    assert unknown.returncode == 2, unknown.stderr
    assert "Traceback" not in unknown.stderr and "not found in cluster" not in unknown.stderr
    assert unknown.stderr.strip().splitlines()[-1:] == [
        f"fraudstream produce: error: topic 'no-such-topic' does not exist in Kafka at "
        f"{settings.kafka_bootstrap}; create it first, or leave --topic out to produce to "
        f"the transactions topic ({settings.topic_transactions})"], unknown.stderr


def test_headless_demo_accounts_for_every_record(settings: Settings, tmp_path: Path) -> None:
    import dataclasses

    demo_settings = dataclasses.replace(settings, worker_web_port=settings.worker_web_port + 50,
                                        model_path=tmp_path / "demo-model.skops")
    out = tmp_path / "summary.json"
    result = cli(demo_settings, "demo", "--duration", "8", "--rate", "300", "--customers", "200",
                 "--terminals", "400", "--days", "20", "--bad-every", "100", "--json", str(out),
                 timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["produced"] > 1000
    assert summary["produced"] == summary["scored"] + summary["dead_lettered"]
    assert summary["lost"] == 0 and summary["duplicates"] == 0
    assert summary["dead_lettered"] >= summary["produced"] // 101
    assert summary["latency_ms"]["p99"] > 0
    live = [line for line in result.stderr.splitlines() if line.startswith("sent ")]
    assert live and all(" | lag " in line for line in live), live[-3:]
    failovers = [line for line in result.stderr.splitlines() if "failover" in line]
    assert summary["failovers"] == 0, failovers
