"""A worker that refuses its configuration exits with its own status and one line of error."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fraudstream.commands import worker_cmd
from fraudstream.settings import Settings
from fraudstream.workers.health import EXIT_CONFIG_ERROR, exit_reason


def args() -> argparse.Namespace:
    return argparse.Namespace(index=1, instance_id=None, standby=None, loglevel="info")


def test_no_signing_key_is_a_configuration_error(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = worker_cmd.run(args(), Settings(state_dir=tmp_path, signing_key=""))
    assert code == EXIT_CONFIG_ERROR == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fraudstream worker: error: refusing to start: FRAUDSTREAM_SIGNING_KEY is "
                   "not set; no model can be verified; set it to the key the models were "
                   "signed with"]
    assert exit_reason(code, draining=False) == "config_error"


def test_a_model_it_cannot_load_is_a_configuration_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(state_dir=tmp_path, signing_key="k" * 64,
                        model_path=tmp_path / "missing.model",
                        model_stores=f"file://{tmp_path / 'store'}")
    assert worker_cmd.run(args(), settings) == EXIT_CONFIG_ERROR
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("fraudstream worker: error: refusing to start: ")
    assert "missing.json: no manifest" in line
