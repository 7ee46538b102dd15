"""The package installer disables only the services of packages it installed itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "deploy" / "local" / "install-packages.sh"


def fake_machine(tmp_path: Path, commands: list[str], installed: list[str]) -> dict[str, str]:
    """A PATH with only ``commands`` (plus fake apt-get, dpkg-query, systemctl that log their
    calls) and dpkg saying ``installed`` are installed; returns the environment."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in commands:
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {log}\n')
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "systemctl $*" >> {log}\n')
    # dpkg-query -W -f='${Status}' PACKAGE: the package is the last argument.
    status = "\n".join(f'[ "$last" = "{p}" ] && printf "install ok installed" && exit 0'
                       for p in installed)
    (bin_dir / "dpkg-query").write_text(
        f"#!/bin/sh\nfor last in \"$@\"; do :; done\n{status}\nexit 1\n")
    (bin_dir / "python3").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    (bin_dir / "env").symlink_to("/usr/bin/env")  # the only real command the script runs
    systemd = tmp_path / "systemd"
    systemd.mkdir()
    return {"PATH": str(bin_dir), "SUDO": "", "SYSTEMD_RUN_DIR": str(systemd),
            "HOME": os.environ.get("HOME", "/tmp")}


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/bash", str(SCRIPT), "redis-server", "prometheus", "chromium"],
                          env=env, capture_output=True, text=True, timeout=30, check=True)


ALL = ["java", "mvn", "redis-server", "prometheus", "promtool", "prometheus-alertmanager",
       "docker-compose", "chromium"]


def test_nothing_missing_touches_nothing(tmp_path: Path) -> None:
    run(fake_machine(tmp_path, ALL, installed=[]))
    assert calls(tmp_path) == []


def test_a_redis_the_machine_already_had_keeps_running(tmp_path: Path) -> None:
    # chromium is missing; Redis was installed (and maybe running) before: left alone.
    have = [c for c in ALL if c != "chromium"]
    run(fake_machine(tmp_path, have, installed=["redis-server"]))
    log = calls(tmp_path)
    assert log[0] == "apt-get update -q"
    assert log[1].startswith("apt-get install -y -q redis-server prometheus chromium")
    assert log[2:] == ["systemctl disable --now prometheus prometheus-alertmanager"]


def test_without_systemd_no_service_is_touched(tmp_path: Path) -> None:
    env = fake_machine(tmp_path, [c for c in ALL if c != "chromium"], installed=[])
    env["SYSTEMD_RUN_DIR"] = str(tmp_path / "absent")
    run(env)
    assert not [c for c in calls(tmp_path) if c.startswith("systemctl")]
