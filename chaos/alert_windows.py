"""The production alert rules with shortened windows, for runs that last seconds, not hours.

``compress_rules`` is the one code path that shortens rules: the end-to-end alert test
(tests/integration/test_alerts_e2e.py) divides every ``for:`` and range selector by 12, and a
chaos run (``fraudstream chaos run --alert-time-scale N``) divides only the ``for:`` windows,
so each alert measures what it measures in production and only waits less before firing.

``shortened_for_windows`` points the running local stack's Prometheus at such a copy for the
length of a run (the config is rewritten and Prometheus reloaded with SIGHUP, as
``kill -HUP`` would), and restores the production rules afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from fraudstream.deploy.local import LocalStack

logger = logging.getLogger(__name__)

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def scaled_duration(amount: str, unit: str, scale: float) -> str:
    """A Prometheus duration (``amount`` ``unit``) divided by ``scale``, in whole seconds (>= 1)."""
    seconds = int(amount) * _UNIT_S[unit]
    return f"{max(int(seconds // scale), 1)}s"


def compress_rules(src: Path, dst: Path, scale: float, ranges: bool = True) -> None:
    """Copy the rule files of ``src`` into ``dst`` with every ``for:`` divided by ``scale``,
    and every range selector too when ``ranges``."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in src.glob("*.yml"):
        text = re.sub(r"^(\s+for:) (\d+)([smhd])$",
                      lambda m: f"{m[1]} {scaled_duration(m[2], m[3], scale)}",
                      path.read_text(), flags=re.M)
        if ranges:
            text = re.sub(r"\[(\d+)([smhd])\]",
                          lambda m: f"[{scaled_duration(m[1], m[2], scale)}]", text)
        (dst / path.name).write_text(text)


def longest_for_seconds(src: Path) -> int:
    """The longest ``for:`` window (seconds) in the rule files of ``src`` (0 if none)."""
    longest = 0
    for path in src.glob("*.yml"):
        for m in re.finditer(r"^\s+for: (\d+)([smhd])$", path.read_text(), flags=re.M):
            longest = max(longest, int(m[1]) * _UNIT_S[m[2]])
    return longest


def _rule_files(host: str, port: int) -> set[str]:
    """The rule files Prometheus has loaded (empty if it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/api/v1/rules", timeout=3) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return set()
    return {g.get("file", "") for g in body.get("data", {}).get("groups", [])}


def _point_prometheus_at(stack: LocalStack, rules_dir: Path, timeout_s: float) -> bool:
    """Rewrite the stack's Prometheus config to load ``rules_dir`` and reload it; whether the
    new rules were seen loaded within ``timeout_s``."""
    server = dataclasses.replace(stack.prometheus, rules_dir=rules_dir)
    conf = server.root / "conf" / "prometheus.yml"
    conf.write_text(server.config())
    pid = server.process.pid()
    if pid is None:
        return False
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout_s
    prefix = str(rules_dir.resolve())
    while time.monotonic() < deadline:
        files = _rule_files(server.host, server.port)
        if files and all(f.startswith(prefix) for f in files):
            return True
        time.sleep(0.3)
    return False


@contextlib.contextmanager
def shortened_for_windows(stack: LocalStack, scale: float, work_dir: Path,
                          timeout_s: float = 15.0) -> Iterator[bool]:
    """While inside, the stack's Prometheus runs the production rules with ``for:`` / ``scale``.

    Yields whether Prometheus took them (False: it is not running, or did not reload in
    ``timeout_s``; the run then checks alerts with the production windows). On exit the
    production rules are restored.
    """
    production = stack.prometheus.rules_dir
    compress_rules(production, work_dir, scale, ranges=False)
    took = _point_prometheus_at(stack, work_dir, timeout_s)
    if not took:
        logger.warning("Prometheus did not load the shortened rules dir=%s", work_dir)
    try:
        yield took
    finally:
        if not _point_prometheus_at(stack, production, timeout_s):
            logger.warning("Prometheus did not reload the production rules dir=%s", production)
