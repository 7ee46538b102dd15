"""Reading a scoring worker's ``/metrics``: one place for the chaos runner, its faults and the
tests that watch workers."""

from __future__ import annotations

import urllib.request

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
