"""Shortened alert windows for chaos runs, and the drift-alert check of each scenario."""

from __future__ import annotations

import argparse
from pathlib import Path

from fraudstream.chaos.alert_windows import compress_rules, longest_for_seconds, scaled_duration
from fraudstream.chaos.runner import unexpected_drift_alerts
from fraudstream.chaos.scenarios import SCENARIOS

RULE = """groups:
  - name: g
    rules:
      - alert: A
        expr: increase(x_total[5m]) > 0
        for: 10m
      - alert: B
        expr: y > 1
        for: 30s
"""


def test_for_windows_are_divided_and_ranges_kept_unless_asked(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "r.yml").write_text(RULE)
    compress_rules(src, tmp_path / "for_only", 60, ranges=False)
    text = (tmp_path / "for_only" / "r.yml").read_text()
    assert "for: 10s" in text and "for: 1s" in text  # 600/60; 30/60 rounds up to 1 s
    assert "[5m]" in text
    compress_rules(src, tmp_path / "both", 12)
    both = (tmp_path / "both" / "r.yml").read_text()
    assert "for: 50s" in both and "[25s]" in both and "for: 2s" in both


def test_scaled_duration_never_goes_below_one_second() -> None:
    assert scaled_duration("2", "m", 12) == "10s"
    assert scaled_duration("1", "h", 60) == "60s"
    assert scaled_duration("5", "s", 60) == "1s"


def test_only_the_amount_family_may_drift_in_the_drift_scenario() -> None:
    allowed = SCENARIOS["drift"].drift_allowed
    seen = {"firing": {"FraudstreamFeatureDrift[amount]", "FraudstreamScoringLatencyHigh"},
            "pending": {"FraudstreamFeatureDrift[is_night]", "FraudstreamScoreDrift",
                        "FraudstreamFeatureDrift[card_nb_tx_7d]"}}
    assert unexpected_drift_alerts(allowed, seen) == [
        "FraudstreamFeatureDrift[card_nb_tx_7d]", "FraudstreamFeatureDrift[is_night]"]


def test_a_scenario_without_injected_drift_allows_no_drift_alert_at_all() -> None:
    for name in ("kill-worker", "overload"):
        assert SCENARIOS[name].drift_allowed == ()
    seen = {"firing": set(), "pending": {"FraudstreamScoreDrift",
                                         "FraudstreamWorkerFailover"}}
    assert unexpected_drift_alerts((), seen) == ["FraudstreamScoreDrift"]


def test_the_cli_option_reaches_the_run_plan() -> None:
    from fraudstream.commands import chaos_cmd

    parser = argparse.ArgumentParser()
    chaos_cmd.add_parser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["chaos", "run", "drift", "--alert-time-scale", "60"])
    assert args.alert_time_scale == 60.0
    default = parser.parse_args(["chaos", "run", "drift"])
    assert default.alert_time_scale == 1.0


def test_longest_for_window_is_read_from_the_rule_files(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(RULE)
    assert longest_for_seconds(tmp_path) == 600
