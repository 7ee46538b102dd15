"""``chaos run --target compose`` without a Docker engine: what it refuses, and how it names
the deployment."""

from __future__ import annotations

import argparse

import pytest

from fraudstream.chaos.compose_target import CONTAINER_FAULTS, ComposeRunner
from fraudstream.chaos.runner import RunPlan
from fraudstream.chaos.scenarios import SCENARIOS
from fraudstream.commands.chaos_cmd import compose_project, exit_status
from fraudstream.settings import Settings


def test_a_scenario_without_a_container_fault_is_skipped_and_fails_the_run() -> None:
    runner = ComposeRunner(Settings(), RunPlan(), "nowhere")
    report = runner.run(SCENARIOS["poison"])
    assert report.skipped and "kill-worker" in report.skipped
    assert exit_status([report]) == 1
    assert set(CONTAINER_FAULTS) == {"kill-worker", "hang-worker"} <= set(SCENARIOS)


@pytest.mark.parametrize(("given", "env", "cwd", "expected"), [
    ("My.Project", None, "ignored", "myproject"),
    (None, "from-env", "ignored", "from-env"),
    (None, None, "Fraud_Stream", "fraud_stream"),
])
def test_the_project_is_named_as_docker_compose_names_it(
        given: str | None, env: str | None, cwd: str, expected: str,
        monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / cwd
    folder.mkdir()
    monkeypatch.chdir(folder)
    if env is None:
        monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    else:
        monkeypatch.setenv("COMPOSE_PROJECT_NAME", env)
    assert compose_project(argparse.Namespace(project=given)) == expected
