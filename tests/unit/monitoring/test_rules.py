"""Alert and recording rules: promtool checks and unit tests, annotations, runbook sections."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
RULES_DIR = ROOT / "monitoring" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.yml"))
RUNBOOK = ROOT / "monitoring" / "runbook.md"



def alerts() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def test_rule_files_are_valid(promtool: str) -> None:
    assert RULE_FILES
    result = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    assert TEST_FILES
    result = subprocess.run([promtool, "test", "rules", *map(str, TEST_FILES)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - firing == set(), "alerts without a firing test case"
    assert names - quiet == set(), "alerts without a must-not-fire test case"


def test_every_alert_has_summary_description_and_a_runbook_section() -> None:
    headings = {re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower().replace(" ", "-"))
                for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}
    for alert in alerts():
        notes = alert.get("annotations", {})
        assert notes.get("summary") and notes.get("description"), alert["alert"]
        assert alert.get("labels", {}).get("severity") in {"warning", "critical"}
        url = notes.get("runbook_url", "")
        page, _, anchor = url.partition("#")
        assert page == "monitoring/runbook.md", alert["alert"]
        assert anchor == alert["alert"].lower() and anchor in headings, alert["alert"]
