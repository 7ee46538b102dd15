"""Argument types that refuse values a command cannot run with, as argparse errors (one line,
exit 2): a negative duration or rate used to start the stack and do nothing, or the opposite of
what was asked (``demo --rate 0`` streamed unthrottled; ``tail --max 0`` followed forever)."""

from __future__ import annotations

import argparse
import math

from fraudstream.settings import MAX_WORKERS


def _number(text: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid {'integer' if kind is int else 'number'}: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def worker_count(text: str) -> int:
    value = positive_int(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"{text} is more than {MAX_WORKERS} workers: worker N serves on "
            f"FRAUDSTREAM_WORKER_WEB_PORT + N, and slot {MAX_WORKERS + 1} would take a chaos "
            "run's supervisor port")
    return value
