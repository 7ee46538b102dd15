"""Arguments a command cannot run with are refused before anything starts, and a closed pipe
ends a command quietly (found by a newcomer's walkthrough, 2026-12-05)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.cli import main


@pytest.mark.parametrize("argv", [
    ["demo", "--rate", "0"],  # streamed unthrottled: 422,000 sent, p99 87 s
    ["demo", "--duration", "-1"],  # started the stack and three workers, produced nothing
    ["demo", "--workers", "0"],  # a traceback after the stack had started
    ["chaos", "run", "kill-worker", "--rate", "0"],  # FAIL without a reason
    ["tail", "scores", "--max", "0"],  # followed forever
    ["tail", "scores", "--idle-timeout", "-5"],
    ["produce", "--from", "x.csv", "--rate", "-3"],
    ["simulate", "--live", "--rate", "-5"],
    ["supervise", "--workers", "0"],
    # Slot 99 serves on the web port + 99: a chaos run's supervisor port.
    ["supervise", "--workers", "99"],
    ["demo", "--workers", "99"],
    ["chaos", "run", "kill-worker", "--workers", "99"],
    ["supervise", "--interval", "nan"],
    ["simulate", "--out", "x.csv", "--customers", "0"],
])
def test_values_a_command_cannot_run_with_are_one_line_errors(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"fraudstream {argv[0]}") and "error: argument" in err[-1], err


def test_zero_means_as_fast_as_possible_where_the_help_says_so() -> None:
    from fraudstream.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["produce", "--from", "x.csv", "--rate", "0"]).rate == 0
    assert parser.parse_args(["simulate", "--live", "--rate", "0"]).rate == 0
    assert parser.parse_args(["demo", "--standby", "0", "--bad-every", "0"]).standby == 0


@pytest.mark.parametrize("lines", [3, 200_000])
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path, lines: int) -> None:
    # `fraudstream registry show production | head -1` and `fraudstream tail ... | head -1`
    # ended in a BrokenPipeError traceback. A command printing a lot meets the closed pipe
    # while it prints; one printing a little, when Python flushes stdout at exit.
    code = ("import sys\n"
            "from fraudstream import cli\n"
            "from fraudstream.commands import tail_cmd\n"
            "def flood(args, settings):\n"
            f"    for i in range({lines}):\n"
            "        print('record', i)\n"
            "    return 0\n"
            "tail_cmd.run = flood\n"
            "sys.exit(cli.main(['tail', 'scores']))\n")
    script = tmp_path / "pipe.sh"
    script.write_text(f"{sys.executable} -c \"$CODE\" | true\n"
                      "exit ${PIPESTATUS[0]}\n")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CODE": code})
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141, (done.returncode, done.stderr)


def test_simulate_writes_into_a_directory_it_creates_and_says_when_it_cannot(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "dir" / "x.csv"
    assert main(["simulate", "--out", str(out), "--customers", "5", "--terminals", "10",
                 "--days", "2"]) == 0
    assert out.read_text().startswith("transaction_id")
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["simulate", "--out", str(blocked / "x.csv"), "--customers", "5",
                 "--terminals", "10", "--days", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fraudstream simulate: error: cannot write"), err


def test_the_api_on_a_taken_port_is_a_one_line_error(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setenv("FRAUDSTREAM_BIND_HOST", "127.0.0.1")
        assert main(["api", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"fraudstream api: error: cannot listen on 127.0.0.1:{port} (Address "
                       "already in use); choose another port with --port or "
                       "FRAUDSTREAM_API_PORT"), err


def test_without_a_signing_key_the_registry_commands_point_to_the_demos(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRAUDSTREAM_SIGNING_KEY", raising=False)
    monkeypatch.setenv("FRAUDSTREAM_STATE_DIR", str(tmp_path))
    assert main(["registry", "list"]) == 2
    assert capsys.readouterr().err.strip() == (
        "fraudstream registry: error: FRAUDSTREAM_SIGNING_KEY is not set; the registry signs "
        "and verifies models with it")
    (tmp_path / "signing.key").write_text("k" * 64)
    assert main(["registry", "list"]) == 2
    key = tmp_path / "signing.key"
    assert capsys.readouterr().err.strip() == (
        "fraudstream registry: error: FRAUDSTREAM_SIGNING_KEY is not set; the registry signs "
        f"and verifies models with it; the demo's key is in {key}: "
        f"export FRAUDSTREAM_SIGNING_KEY=$(cat {key})")


def test_stack_status_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # It wrote a Redis password into a state dir that did not exist.
    state = tmp_path / "nowhere" / "x"
    monkeypatch.setenv("FRAUDSTREAM_STATE_DIR", str(state))
    assert main(["stack", "status"]) == 0
    assert not state.exists()


def test_the_stack_and_the_chaos_run_keep_the_same_worker_slots_free() -> None:
    from fraudstream.chaos.ports import PORT_OFFSET, app_ports
    from fraudstream.deploy.local.stack import stack_from_settings
    from fraudstream.settings import MAX_WORKERS, Settings

    settings = Settings()
    assert MAX_WORKERS <= PORT_OFFSET - 2
    reserved = {port for _label, port in stack_from_settings(settings).config.reserved_ports}
    slots = {settings.worker_web_port + n for n in range(1, MAX_WORKERS + 1)}
    assert slots <= reserved and slots <= app_ports(settings)
