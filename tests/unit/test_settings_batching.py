"""Batch settings outside their range stop a command with one line, not a stalled hop."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from fraudstream.cli import main
from fraudstream.settings import MAX_BATCH_WINDOW_S, Settings, SettingsError


@pytest.mark.parametrize(("name", "value"), [
    ("batch_window_s", -0.01), ("batch_window_s", float("nan")),
    ("label_batch_window_s", -1.0), ("label_batch_window_s", MAX_BATCH_WINDOW_S + 1),
    ("label_batch_window_s", float("inf"))])
def test_a_batch_window_outside_0_to_the_maximum_is_refused(name: str, value: float) -> None:
    with pytest.raises(SettingsError, match=f"FRAUDSTREAM_{name.upper()} is .*; use seconds "
                                            "from 0"):
        changed: dict[str, Any] = {name: value}
        dataclasses.replace(Settings(), **changed)


def test_the_ends_of_the_range_and_the_defaults_are_accepted() -> None:
    for value in (0.0, MAX_BATCH_WINDOW_S):
        dataclasses.replace(Settings(), batch_window_s=value, label_batch_window_s=value)
    Settings()


def test_a_batch_size_under_one_is_refused() -> None:
    with pytest.raises(SettingsError, match="FRAUDSTREAM_BATCH_SIZE is 0; use at least 1"):
        dataclasses.replace(Settings(), batch_size=0)


def test_the_command_line_says_which_setting_and_exits_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRAUDSTREAM_LABEL_BATCH_WINDOW_S", "-1")
    assert main(["stack", "status"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fraudstream stack: error: FRAUDSTREAM_LABEL_BATCH_WINDOW_S is -1.0; use "
                   "seconds from 0 (take only what is waiting) to 10 (default 1)"]
