"""The chaos report's arithmetic and summaries, on hand-made timelines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chaos.report import ChaosReport, drain_seconds, p99_by_phase, recovery_seconds, timeline
from chaos.runner import (
    ChaosBusy,
    RunPlan,
    exclusive_run,
    load_phases,
    missing_alerts,
    run_alerts,
)
from chaos.scenarios import SCENARIOS
from fraudstream.commands.chaos_cmd import exit_status, table


def series(rates: Sequence[float]) -> list[dict[str, float]]:
    return [{"t": float(i), "scored": r, "p99_ms": 10.0} for i, r in enumerate(rates)]


def test_timeline_buckets_decisions_per_second() -> None:
    start = 1_000_000
    points = [(start + 100, 5.0), (start + 900, 15.0), (start + 2500, 30.0)]
    out = timeline(points, start)
    assert [b["scored"] for b in out] == [2.0, 0.0, 1.0]
    assert out[2]["p99_ms"] == 30.0


def test_recovery_is_the_first_bucket_back_at_ninety_percent_of_the_prior_rate() -> None:
    rates = [100, 100, 100, 100, 0, 0, 50, 95, 100]
    assert recovery_seconds(series(rates), fault_at_s=4, rate=100) == 3.0
    assert recovery_seconds(series([100] * 8), fault_at_s=4, rate=100) == 0.0
    assert recovery_seconds(series([100, 100, 100, 100, 0, 0]), fault_at_s=4, rate=100) is None


def test_p99_by_phase_splits_at_the_fault_and_the_recovery() -> None:
    start = 0
    points = [(500, 1.0), (4500, 200.0), (9000, 3.0)]
    phases = p99_by_phase(points, start, fault_at_s=2, recovered_at_s=6)
    assert phases == {"before": 1.0, "during": 200.0, "after": 3.0}


def test_summaries_show_replacement_pending_alerts_and_continuity(tmp_path: Path) -> None:
    report = ChaosReport("hang-worker", produced=10, scored=10, passed=True,
                         replaced_after_s=2.4, recovery_seconds=7.0,
                         alerts_fired=["FraudstreamWorkerFailover"],
                         alerts_pending=["FraudstreamWorkerDown"],
                         gap_records_read=0, redelivered_dropped=3,
                         timeline=series([5, 5]), fault_at_s=1.0)
    md = report.markdown()
    assert "first 2.4 s after the fault" in md
    assert "pending (their `for:` window outlasted the run): FraudstreamWorkerDown" in md
    assert "0 skipped records read from Kafka, 3 repeated records dropped" in md
    row = table([report]).splitlines()[-1].split()
    assert row[:3] == ["hang-worker", "pass", "10"]
    assert row[7:9] == ["2.4", "7.0"]
    assert row[-3:] == ["FraudstreamWorkerFailover", "(+1", "pending)"]
    report.alerts_expected = ["FraudstreamWorkerDown"]
    assert table([report]).endswith("  FraudstreamWorkerFailover,*FraudstreamWorkerDown")
    written = report.write(tmp_path / "r.json")
    written += ChaosReport("no-fault", timeline=series([5])).write(tmp_path / "n.json")
    assert [p.suffix for p in written] == [".json", ".md", ".png"] * 2


def test_run_alerts_keeps_this_runs_alerts_raised_after_the_load_started() -> None:
    def alert(name: str, state: str, at: str, **labels: str) -> dict[str, object]:
        return {"labels": {"alertname": name, "app": labels.pop("app", "run"), **labels},
                "state": state, "activeAt": at}

    body = {"data": {"alerts": [
        alert("FraudstreamWorkerFailover", "firing", "2026-11-27T10:00:05.123456789Z"),
        alert("FraudstreamFeatureDrift", "pending", "2026-11-27T10:00:09Z", feature="amount"),
        alert("FraudstreamWorkersBelowDesired", "pending", "2026-11-27T09:59:58Z"),
        alert("FraudstreamWorkerDown", "firing", "2026-11-27T10:00:06Z", app="other-run"),
    ]}}
    since = int(datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC).timestamp() * 1000)
    assert run_alerts(body, "run", since) == {
        "firing": {"FraudstreamWorkerFailover"},
        "pending": {"FraudstreamFeatureDrift[amount]"}}


def test_one_chaos_run_at_a_time_per_state_dir(tmp_path: Path) -> None:
    with (exclusive_run(tmp_path), pytest.raises(ChaosBusy, match="another chaos run"),
          exclusive_run(tmp_path)):
        pass
    with exclusive_run(tmp_path):  # released
        pass


def test_drain_is_measured_to_the_last_decision_that_waited_in_the_backlog() -> None:
    start = 1_000_000
    points = [(start + 1_000, 20.0), (start + 12_000, 8_000.0), (start + 15_500, 3_000.0),
              (start + 16_000, 30.0), (start + 20_000, 25.0)]
    assert drain_seconds(points, start, since_s=10.0, slow_ms=1000.0) == 5.5
    assert drain_seconds(points[:1], start, since_s=0.5, slow_ms=1000.0) == 0.0
    assert drain_seconds([], start, since_s=0.0, slow_ms=1000.0) is None


def test_overload_phases_raise_the_rate_while_the_fault_lasts_then_lower_it() -> None:
    plan = RunPlan(rate=400, duration_s=40, fault_at_s=6)
    overload = SCENARIOS["overload"]
    assert overload.heal_after_s == 20
    # 6 s at 400/s, 20 s at 1,600/s, the remaining 14 s at 200/s.
    assert load_phases(plan, overload) == [(2_400, 400.0), (32_000, 1_600.0), (2_800, 200.0)]
    assert load_phases(plan, SCENARIOS["kill-worker"]) == [(16_000, 400.0)]


def test_a_run_with_a_skipped_scenario_does_not_pass() -> None:
    passed = ChaosReport("kill-worker", passed=True)
    skipped = ChaosReport("kill-broker", skipped="needs three nodes")
    assert exit_status([passed]) == 0
    assert exit_status([passed, skipped]) == 1
    assert exit_status([]) == 1


def test_expected_alerts_count_as_missing_when_prometheus_never_answered() -> None:
    seen = {"firing": {"A"}, "pending": {"B"}}
    assert missing_alerts(("A", "B", "C"), seen, answered=True) == ["C"]
    assert missing_alerts(("A", "B"), {"firing": set(), "pending": set()},
                          answered=False) == ["A", "B"]
