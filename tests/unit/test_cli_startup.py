"""``fraudstream --help`` answers without the heavy libraries, and ``--version`` works."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.cli import COMMANDS, build_parser, installed_version
from fraudstream.commands.model_families import DEFAULT_MODEL_FAMILY, MODEL_FAMILIES

ROOT = Path(__file__).resolve().parents[2]
#: Libraries that cost from tens of milliseconds (numpy) to seconds (scikit-learn) to import.
HEAVY = {"sklearn", "skops", "scipy", "numpy", "faust", "mode", "aiokafka", "kafka"}
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$")


def command_names() -> list[str]:
    """Every subcommand of ``fraudstream``, as the parser knows them."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions  # argparse keeps no public list of them
                      if isinstance(a, argparse._SubParsersAction))
    return sorted(subparsers.choices)


def run_with_importtime(*argv: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``python -X importtime -m fraudstream.cli argv`` from this worktree."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "fraudstream.cli",
                             *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=env)
    return proc, list(argv)


def imported_modules(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` output."""
    return {m.group(1) for line in stderr.splitlines() if (m := IMPORT_LINE.match(line))}


def test_import_lines_are_parsed() -> None:
    sample = ("import time: self [us] | cumulative | imported package\n"
              "import time:       245 |     650859 |               sklearn\n"
              "import time:        12 |         12 |   sklearn.base\n")
    assert imported_modules(sample) == {"sklearn", "sklearn.base"}


def test_every_help_answers_without_heavy_libraries() -> None:
    # All run at once: each is a short, mostly idle interpreter start.
    argvs = [["--help"], ["--version"]] + [[name, "--help"] for name in command_names()]
    assert len(argvs) == 2 + len(COMMANDS)
    runs = [run_with_importtime(*argv) for argv in argvs]
    for proc, argv in runs:
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, (argv, stderr[-2000:])
        modules = imported_modules(stderr)
        # The command modules were imported (the check can fail: it sees what is imported).
        assert "fraudstream.commands.topics_cmd" in modules, argv
        loaded = sorted({m.split(".")[0] for m in modules} & HEAVY)
        assert loaded == [], f"`fraudstream {' '.join(argv)}` imported {loaded}"
        assert stdout.strip(), argv


def test_the_static_family_list_is_the_registrys() -> None:
    from fraudstream.model_registry.families import DEFAULT_FAMILY, FAMILIES

    assert tuple(sorted(FAMILIES)) == MODEL_FAMILIES
    assert DEFAULT_FAMILY == DEFAULT_MODEL_FAMILY


@pytest.mark.parametrize("command", ["train", "backtest"])
def test_model_help_lists_every_family(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "model family: blend, hgb, logreg, rf (default blend)" in text


def test_chaos_run_help_lists_the_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    from fraudstream.chaos.scenarios import SCENARIOS

    with pytest.raises(SystemExit):
        build_parser().parse_args(["chaos", "run", "--help"])
    out = capsys.readouterr().out
    for scenario in SCENARIOS.values():
        assert f"  {scenario.name:<15} {scenario.description}" in out
    assert "  all             every scenario in turn" in out


def test_version_prints_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"fraudstream {metadata.version('fraudstream')}\n"


def test_version_falls_back_to_the_package_when_not_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    import fraudstream

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    monkeypatch.setattr(fraudstream, "__version__", "9.8.7")
    assert installed_version() == "9.8.7"
