"""README, --help and settings stay consistent with the code."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fraudstream.cli import COMMANDS, build_parser, main
from fraudstream.settings import Settings, SettingsError

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_documents_every_setting() -> None:
    missing = [name for name, _d, _t in Settings.describe() if f"`{name}`" not in README]
    assert not missing, f"README.md does not document {missing}"


def test_readme_shows_the_two_commands_and_every_cli_command() -> None:
    assert "make demo" in README and "make test" in README
    names = command_names()
    assert len(names) == len(COMMANDS)
    missing = [n for n in names if f"fraudstream {n}" not in README]
    assert not missing, f"README.md does not show {missing}"


def command_names() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


@pytest.mark.parametrize("command", command_names())
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) > 4


def test_settings_from_environment_and_bad_values() -> None:
    s = Settings.from_env({"FRAUDSTREAM_PARTITIONS": "8", "FRAUDSTREAM_BATCH_WINDOW_S": "0.1",
                           "FRAUDSTREAM_BOOTSTRAP_SERVERS": "k1:9092,k2:9092"})
    assert (s.partitions, s.batch_window_s, s.kafka_bootstrap) == (8, 0.1, "k1:9092,k2:9092")
    assert Settings.from_env({}).kafka_bootstrap == "127.0.0.1:9092"
    with pytest.raises(SettingsError, match="FRAUDSTREAM_PARTITIONS='many'"):
        Settings.from_env({"FRAUDSTREAM_PARTITIONS": "many"})


def test_train_without_signing_key_is_a_one_line_error(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRAUDSTREAM_SIGNING_KEY", raising=False)
    assert main(["train", "--customers", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fraudstream train: error: FRAUDSTREAM_SIGNING_KEY is not set")
    assert len(err.splitlines()) == 1


def test_boolean_settings_accept_common_spellings() -> None:
    assert Settings.from_env({"FRAUDSTREAM_EMIT_FEATURES": "true"}).emit_features is True
    assert Settings.from_env({"FRAUDSTREAM_EMIT_FEATURES": "0"}).emit_features is False
    assert Settings.from_env({"FRAUDSTREAM_EMIT_FEATURES": "False"}).emit_features is False
    with pytest.raises(SettingsError, match="FRAUDSTREAM_EMIT_FEATURES='maybe'"):
        Settings.from_env({"FRAUDSTREAM_EMIT_FEATURES": "maybe"})


def test_train_with_an_unknown_family_is_a_one_line_error(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("FRAUDSTREAM_SIGNING_KEY", "k" * 16)
    assert main(["train", "--customers", "20", "--terminals", "40", "--days", "30",
                 "--model", "xgboost", "--out", str(tmp_path / "m.skops")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fraudstream train: error: unknown model family 'xgboost'")
    assert len(err.splitlines()) == 1
