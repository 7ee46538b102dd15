"""The wheel alone runs the CLI: built, installed into a fresh virtualenv outside the repository.

The fresh environment gets fraudstream only from the wheel; its third-party dependencies come
from this test's environment through a path file (no second download of scikit-learn and the
rest), whose own path files are not processed, so the repository's editable install cannot leak
in. The test runs from a folder outside the repository, with no PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import urllib.request
import venv
from pathlib import Path

import pytest

from fraudstream import __version__
from tests.stack_fixtures import BASE_PORT

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(ROOT)], check=True, cwd=out, capture_output=True, timeout=300)
    (wheel,) = out.glob("fraudstream-*.whl")
    return wheel


def fresh_env(where: Path, wheel: Path) -> Path:
    """A new virtualenv with the wheel installed; returns its bin folder."""
    venv.create(where, with_pip=True)
    bin_dir = where / "bin"
    site = Path(subprocess.run([bin_dir / "python", "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies-from-the-test-env.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    return bin_dir


def test_the_wheel_runs_the_cli_and_the_stack_from_a_fresh_env(tmp_path: Path) -> None:
    (tmp_path / "wheel").mkdir()
    wheel = build_wheel(tmp_path / "wheel")
    bin_dir = fresh_env(tmp_path / "venv", wheel)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FRAUDSTREAM_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(FRAUDSTREAM_STATE_DIR=str(work / "state"),
               FRAUDSTREAM_KAFKA_PORT=str(BASE_PORT + 600),
               FRAUDSTREAM_REDIS_PORT=str(BASE_PORT + 601),
               FRAUDSTREAM_PROMETHEUS_PORT=str(BASE_PORT + 602),
               FRAUDSTREAM_ALERTMANAGER_PORT=str(BASE_PORT + 603),
               FRAUDSTREAM_API_PORT=str(BASE_PORT + 604))

    def run(*argv: str | Path, timeout: float = 60) -> str:
        proc = subprocess.run([str(a) for a in argv], cwd=work, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        return proc.stdout

    where = run(bin_dir / "python", "-c", "import fraudstream.workers.app as m, "
                "fraudstream.monitoring.dashboard as d; print(m.__file__); print(d.__file__)")
    assert all(Path(line).is_relative_to(tmp_path / "venv") for line in where.split()), where
    top_level = run(bin_dir / "python", "-c", "import importlib.metadata as md; "
                    "print(md.distribution('fraudstream').read_text('top_level.txt'))")
    assert top_level.split() == ["fraudstream"]
    assert run(bin_dir / "fraudstream", "--version").strip() == f"fraudstream {__version__}"
    try:
        up = run(bin_dir / "fraudstream", "stack", "up", timeout=600)
        assert "stack ready" in up
        status = run(bin_dir / "fraudstream", "stack", "status")
        for service in ("kafka-1", "redis", "prometheus", "alertmanager"):
            assert any(line.split()[:2] == [service, "ready"] for line in status.splitlines()), (
                status)
        with urllib.request.urlopen(f"http://127.0.0.1:{BASE_PORT + 602}/api/v1/rules",
                                    timeout=10) as answer:
            groups = json.load(answer)["data"]["groups"]
        assert any(rule["name"] == "FraudstreamWorkerDown" for group in groups
                   for rule in group["rules"]), "Prometheus got no alert rules from the wheel"
    finally:
        down = run(bin_dir / "fraudstream", "stack", "down", timeout=120)
    assert "kafka-1" in down
