"""The compose deployment's images, built on a machine that cannot pull from any registry.

    python -m fraudstream.deploy.docker.images engine   # start dockerd if none answers
    python -m fraudstream.deploy.docker.images base     # Debian base: debootstrap + import
    python -m fraudstream.deploy.docker.images build    # the images, FROM that base

The base is Debian bookworm (minbase) from Debian's packages, loaded with ``docker import``;
the images install the rest from Debian and PyPI and take Kafka from the jars the local stack
already fetched from Maven Central. Where TLS is intercepted, pip needs the host's CA bundle:
it reaches the build as ``deploy/docker/build-ca.crt`` (git-ignored), which only the build
stage of the fraudstream image reads; no image keeps it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from fraudstream.deploy.local.errors import StackError
from fraudstream.deploy.local.kafka import ensure_jars, require_tool

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "deploy" / "docker"
BUILD_CA = DOCKER_DIR / "build-ca.crt"
COMPOSE_FILE = ROOT / "docker-compose.yml"
HOST_OVERRIDE = DOCKER_DIR / "compose.host.yml"
BASE_TAG = "fraudstream-base:bookworm"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
#: Variables docker-compose.yml refuses to render without (``${VAR:?...}``).
REQUIRED_SECRETS = ("FRAUDSTREAM_SIGNING_KEY", "FRAUDSTREAM_API_TOKEN",
                    "FRAUDSTREAM_REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
APT_HINT = "Install it with: apt-get install docker.io docker-compose debootstrap"


def run(cmd: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), text=True, check=False, **kwargs)  # type: ignore[call-overload]


def engine_answers() -> bool:
    docker = require_tool("docker", APT_HINT)
    return run([docker, "info"], capture_output=True).returncode == 0


def ensure_engine(log_dir: Path = ROOT / "build", wait_s: float = 60.0) -> None:
    """Start ``dockerd`` in the background when no Docker engine answers (a fresh machine)."""
    if engine_answers():
        return
    dockerd = require_tool("dockerd", APT_HINT)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "dockerd.log"
    print(f"no Docker engine answers: starting {dockerd} (log {log})", flush=True)
    with log.open("ab") as out:
        subprocess.Popen([dockerd], stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if engine_answers():
            return
        time.sleep(1.0)
    raise StackError(f"dockerd started but did not answer within {wait_s:.0f} s; see {log}")


def image_exists(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def build_base(tag: str = BASE_TAG, mirror: str = MIRROR, force: bool = False) -> None:
    """Debian ``SUITE`` (minbase) from ``mirror``, imported as image ``tag`` (once)."""
    ensure_engine()
    if image_exists(tag) and not force:
        print(f"base image {tag} exists (--force builds it again)")
        return
    debootstrap = require_tool("debootstrap", APT_HINT)
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build", prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        print(f"debootstrap {SUITE} (minbase) from {mirror} into {rootfs}", flush=True)
        started = time.monotonic()
        boot = run([debootstrap, "--variant=minbase", SUITE, str(rootfs), mirror],
                   capture_output=True)
        if boot.returncode != 0:
            raise StackError(f"debootstrap failed (exit {boot.returncode}):\n"
                             f"{(boot.stdout + boot.stderr)[-2000:]}")
        # apt's caches are not part of an image.
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = run(["docker", "import", "-", tag], stdin=tar.stdout, capture_output=True)
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise StackError(f"docker import failed: {imported.stderr.strip()}")
    print(f"base image {tag} built in {time.monotonic() - started:.0f} s")


def host_ca_bundle(environ: dict[str, str] | None = None) -> Path | None:
    """The CA bundle pip uses on this host (its configuration or the usual variables)."""
    env = os.environ if environ is None else environ
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if env.get(name) and Path(env[name]).is_file():
            return Path(env[name])
    got = run([sys.executable, "-m", "pip", "config", "get", "global.cert"], capture_output=True)
    path = Path(got.stdout.strip()) if got.returncode == 0 and got.stdout.strip() else None
    return path if path is not None and path.is_file() else None


def write_build_ca(target: Path = BUILD_CA) -> None:
    """Put the host's CA bundle where the image build reads it (an empty file if none)."""
    bundle = host_ca_bundle()
    if bundle is None:
        target.write_bytes(b"")
    else:
        shutil.copyfile(bundle, target)


def compose_command(*files: Path) -> list[str]:
    exe = require_tool("docker-compose", APT_HINT)
    return [exe, *[arg for f in files for arg in ("-f", str(f))]]


def build_images(base: str = BASE_TAG, files: Sequence[Path] = (COMPOSE_FILE,)) -> float:
    """Build every image of the deployment FROM ``base``; returns the seconds it took."""
    ensure_engine()
    if not image_exists(base):
        build_base(base)
    ensure_jars()
    write_build_ca()
    # Compose interpolates the whole file even to build; no image reads a secret, so unset
    # ones get a placeholder here (running the deployment still needs the real ones).
    env = {**{name: "unused-while-building" for name in REQUIRED_SECRETS}, **os.environ,
           "BASE_IMAGE": base}
    started = time.monotonic()
    # The app image first: the other services that use it then find it built.
    for service in ("init", "kafka", "redis"):
        done = run([*compose_command(*files), "build", service], cwd=ROOT, env=env)
        if done.returncode != 0:
            raise StackError(f"building the {service} image failed (exit {done.returncode})")
    return time.monotonic() - started


def host_compose_file(out: Path, environ: dict[str, str] | None = None) -> Path:
    """The deployment on the host's network, as one file for ``docker-compose -f``.

    ``docker-compose.yml`` merged with ``compose.host.yml`` (``docker-compose config``), minus
    every ``ports`` entry: Docker refuses published ports on the host's network, and an
    override file can add list entries but not remove them. The file holds the interpolated
    secrets, so it is written readable by its owner only.
    """
    import yaml

    env = dict(os.environ if environ is None else environ)
    merged = run([*compose_command(COMPOSE_FILE, HOST_OVERRIDE), "config"], cwd=ROOT, env=env,
                 capture_output=True)
    if merged.returncode != 0:
        raise StackError(f"docker-compose config failed: {merged.stderr.strip()}")
    model = yaml.safe_load(merged.stdout)
    for service in model["services"].values():
        service.pop("ports", None)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=0o600)
    out.chmod(0o600)
    out.write_text(yaml.safe_dump(model, sort_keys=False))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fraudstream.deploy.docker.images",
        description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("what", choices=("engine", "base", "build"),
                        help="engine: start dockerd if none answers; base: build the Debian "
                             "base image; build: build the deployment's images on it")
    parser.add_argument("--base", default=BASE_TAG, help=f"base image tag (default {BASE_TAG})")
    parser.add_argument("--mirror", default=MIRROR, help=f"Debian mirror (default {MIRROR})")
    parser.add_argument("--force", action="store_true", help="base: build it even if it exists")
    args = parser.parse_args(argv)
    try:
        if args.what == "engine":
            ensure_engine()
        elif args.what == "base":
            build_base(args.base, args.mirror, args.force)
        else:
            print(f"images built in {build_images(args.base):.0f} s")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
