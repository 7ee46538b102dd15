"""Talking to a scoring worker's web port (its ``/metrics`` and its loopback chaos hooks): one
place for the chaos runner, its faults and the tests that watch or slow workers."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from fraudstream.settings import Settings


def worker_url(settings: Settings, index: int) -> str:
    """The web address of the worker in slot ``index``."""
    return f"http://{settings.bind_host}:{settings.worker_web_port + index}"


def scrape(url: str, timeout: float = 3.0) -> list[str]:
    """The lines of ``url``'s ``/metrics`` (raises ``OSError`` when it does not answer)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=timeout) as resp:
        return list(resp.read().decode().splitlines())


def sample_value(lines: list[str], sample: str) -> float | None:
    """The value of one sample, named with its labels exactly (``name{a="b"}``), if present."""
    for line in lines:
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def summed(lines: list[str], name: str) -> float:
    """A metric's value summed over all its label sets (0 when absent)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines
               if line.startswith(name + " ") or line.startswith(name + "{"))


def post_chaos_hook(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` to the chaos hook ``path`` (``/chaos/model``, ``/chaos/delivery``) of the
    worker at ``url`` and return the hook's new state (raises ``OSError`` when it refuses)."""
    req = urllib.request.Request(f"{url}{path}", method="POST", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return dict(json.loads(resp.read()))
