"""``--json [FILE]`` means the same on every command that has it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from fraudstream.cli import build_parser
from fraudstream.commands.json_output import add_json_option, emit


def json_options(parser: argparse.ArgumentParser, path: str = "fraudstream"
                 ) -> dict[str, argparse.Action]:
    """Every ``--json`` option of the command tree, by command path."""
    found = {}
    for action in parser._actions:  # argparse keeps no public list of them
        if "--json" in action.option_strings:
            found[path] = action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= json_options(sub, f"{path} {name}")
    return found


def test_every_json_option_is_the_shared_one() -> None:
    options = json_options(build_parser())
    assert {"fraudstream backtest", "fraudstream bench", "fraudstream demo",
            "fraudstream chaos run", "fraudstream registry list",
            "fraudstream registry verify"} <= set(options)
    for command, action in options.items():
        assert (action.dest, action.nargs, action.const, action.default) == (
            "json_out", "?", "-", None), command


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_json_option(parser, "the thing")
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("argv", [("--json",), ("--json", "-")])
def test_json_without_a_file_replaces_the_text_on_stdout(
        argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    emit(parse(*argv), {"a": 1}, lambda: print("the text"))
    assert json.loads(capsys.readouterr().out) == {"a": 1}


def test_json_to_a_file_keeps_the_text(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "deep" / "out.json"
    emit(parse("--json", str(target)), {"a": 1}, lambda: print("the text"))
    assert capsys.readouterr().out == "the text\n"
    assert json.loads(target.read_text()) == {"a": 1}
    emit(parse(), {"a": 2}, lambda: print("only text"))
    assert capsys.readouterr().out == "only text\n"
