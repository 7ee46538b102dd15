"""Packaging: a license, and a lock file pinning what pyproject.toml asks (the image uses it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)$")


def locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"requirements.lock: not a name==version pin: {line!r}"
        pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def test_the_project_has_a_license() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_the_lock_pins_every_runtime_dependency_within_its_range() -> None:
    pins = locked()
    for spec in PYPROJECT["project"]["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={pins[name]}, outside {req.specifier}: "
            "run `make lock`")
    assert "fraudstream" not in pins


def test_the_image_installs_the_lock_before_the_source() -> None:
    lines = [line.strip() for line in
             (ROOT / "deploy" / "docker" / "Dockerfile").read_text().splitlines()]
    lock_install = next(i for i, line in enumerate(lines)
                        if line.endswith("pip install -r requirements.lock"))
    first_source = min(i for i, line in enumerate(lines)
                       if line.startswith("COPY") and "requirements.lock" not in line
                       and "build-ca" not in line)
    assert lines.index("COPY requirements.lock ./") < lock_install < first_source
    assert any(line.endswith("pip install --no-deps . && pip check") for line in lines)


def test_the_build_ca_stays_in_the_build_stage() -> None:
    # The CA bundle pip needs where TLS is intercepted is copied before the runtime stage
    # starts (the second FROM), and the runtime stage copies only the virtualenv from it.
    lines = [line.strip() for line in
             (ROOT / "deploy" / "docker" / "Dockerfile").read_text().splitlines()]
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(stages) == 2
    ca = [i for i, line in enumerate(lines) if "build-ca" in line and line.startswith("COPY")]
    assert ca and all(stages[0] < i < stages[1] for i in ca)
    runtime_copies = [line for line in lines[stages[1]:] if line.startswith("COPY")]
    assert runtime_copies == ["COPY --from=build /opt/fraudstream /opt/fraudstream"]
