"""The chaos report's arithmetic and summaries, on hand-made timelines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fraudstream.chaos.report import (
    ChaosReport,
    drain_seconds,
    p99_by_phase,
    recovery_seconds,
    timeline,
)
from fraudstream.chaos.runner import (
    ChaosBusy,
    RunPlan,
    exclusive_run,
    load_phases,
    missing_alerts,
    run_alerts,
)
from fraudstream.chaos.scenarios import SCENARIOS
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
    assert "drained" not in md  # no fault that heals
    report.healed_at_s, report.drained_after_heal_s = 68.0, 41.25
    assert "Backlog drained 41.2 s after the fault healed (at 68.0 s)" in report.markdown()
    report.drained_after_heal_s = None
    assert "Backlog drained - s after the fault healed" in report.markdown()
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


def test_a_plan_can_make_a_fault_last_longer_than_its_scenario_says() -> None:
    # Issue 9's overload: 60 s at the raised rate, then the lowered one.
    plan = RunPlan(rate=300, duration_s=120, fault_at_s=10, fault_seconds=60)
    # 10 s at 300/s, 60 s at 1,200/s, the remaining 50 s at 150/s.
    assert load_phases(plan, SCENARIOS["overload"]) == [(3_000, 300.0), (72_000, 1_200.0),
                                                        (7_500, 150.0)]


def test_a_run_with_a_skipped_scenario_does_not_pass() -> None:
    passed = ChaosReport("kill-worker", passed=True)
    skipped = ChaosReport("kill-broker", skipped="needs three nodes")
    assert exit_status([passed]) == 0
    assert exit_status([passed, skipped]) == 1
    assert exit_status([]) == 1


def test_expected_alerts_count_as_missing_when_prometheus_never_answered() -> None:
    seen = {"firing": {"A"}, "pending": {"B"}}
    assert missing_alerts(("A", "B", "C"), seen, answered=True, must_fire=False) == ["C"]
    assert missing_alerts(("A", "B"), {"firing": set(), "pending": set()},
                          answered=False, must_fire=False) == ["A", "B"]


def test_with_shortened_windows_an_expected_alert_must_fire() -> None:
    seen = {"firing": {"A"}, "pending": {"B"}}
    assert missing_alerts(("A", "B"), seen, answered=True, must_fire=True) == ["B"]
    assert missing_alerts(("A", "B"), seen, answered=True, must_fire=False) == []


def test_soak_slopes_are_taken_over_the_second_half_per_minute() -> None:
    from fraudstream.chaos.report import p99_per_minute, second_half_slope

    # Flat at 100 for the first half, then +2 per minute: only the second half counts.
    points = [(m * 60.0, 100.0 if m < 10 else 100.0 + 2 * (m - 10)) for m in range(21)]
    slope = second_half_slope(points)
    assert slope is not None and abs(slope - 2.0) < 1e-9
    assert second_half_slope(points[:3]) is None  # too few points in the second half
    assert second_half_slope([]) is None
    start = 1_000_000
    # Minute 0: latencies 1..100 ms; minute 1: all 500 ms; minute 2 is partial: left out.
    scored = ([(start + i * 100, float(i + 1)) for i in range(100)]
              + [(start + 60_000 + i, 500.0) for i in range(10)]
              + [(start + 120_000, 9.0)])
    per_minute = p99_per_minute(scored, start)
    assert [t for t, _p in per_minute] == [0.0, 60.0]
    assert abs(per_minute[0][1] - 99.01) < 1e-6 and per_minute[1][1] == 500.0


def test_a_soak_judges_flatness_and_needs_enough_points() -> None:
    from fraudstream.chaos.report import ChaosReport
    from fraudstream.chaos.runner import soak_problems

    report = ChaosReport("soak", p99_slope_ms_per_min=3.0, memory_slope_mb_per_min=0.2,
                         memory_other_slope_mb_per_min=0.2)
    assert soak_problems(report, 1800) == []
    # RocksDB's caches filling up to their caps are not a leak; the rest growing is.
    report.memory_slope_mb_per_min = 8.0
    assert soak_problems(report, 1800) == []
    report.memory_other_slope_mb_per_min = 4.5
    assert "memory outside RocksDB grew 4.50 MB/min" in " ".join(soak_problems(report, 1800))
    report.p99_slope_ms_per_min = None
    assert "too few points" in " ".join(soak_problems(report, 60))


def test_a_run_streams_its_plans_population_over_as_many_days_as_its_load_covers() -> None:
    """The population is the model's (a denser world shifts the merchant features); more load
    covers more event time. A 30-minute soak at 300 tx/s of the demo's 1,000 customers must
    cover three merchant histories (``MERCHANT_KEEP_DAYS``), which fill before its second half
    (they filled until 79 % of a run that covered 50.8 days)."""
    from fraudstream.chaos.runner import SOAK_SPAN_KEEPS, simulated_days
    from fraudstream.features.windows import MERCHANT_KEEP_DAYS
    from fraudstream.simulator import SimulationConfig, simulate

    for customers, count in [(300, 60_000), (1000, 300 * 1800)]:
        ds = simulate(SimulationConfig(n_customers=customers, n_terminals=2 * customers,
                                       nb_days=simulated_days(count, customers), seed=7))
        assert len(ds) >= count, (customers, count, len(ds))
    covered_days = (ds.timestamp_s[count - 1] - ds.timestamp_s[0]) / 86_400
    assert covered_days >= SOAK_SPAN_KEEPS * MERCHANT_KEEP_DAYS, covered_days
    assert simulated_days(15_000, 1000) == 60


def test_a_soak_that_covered_too_little_event_time_fails_saying_why() -> None:
    from fraudstream.chaos.runner import soak_problems

    report = ChaosReport(scenario="soak", p99_slope_ms_per_min=1.0,
                         memory_slope_mb_per_min=2.0, memory_other_slope_mb_per_min=0.5,
                         event_days=51.0)
    assert "covered 51 simulated days" in " ".join(soak_problems(report, 1800))
    report.event_days = 121.0
    assert soak_problems(report, 1800) == []
