"""Bytes that are kept: exact-size copies of ``orjson.dumps`` results.

``orjson.dumps`` (3.12 and later; 3.13.0 here) returns a bytes object whose allocation is its
working buffer, never trimmed: at least 4 KiB, and for a value holding a list of a hundred
integers (a merchant's state, about 400 bytes of JSON) about 16 KiB, measured with
``tracemalloc``. Bytes that live for one batch do not matter; bytes kept in a cache do: the
workers' decoded-merchant caches held one per merchant, and their resident memory grew with
every merchant whose state changed (14.8 KiB per cached 400-byte state in a soak,
2026-12-02). Whatever keeps an encoding beyond the batch that made it keeps ``kept(...)``.
"""

from __future__ import annotations

from typing import Any

import orjson


def kept(raw: bytes) -> bytes:
    """An exact-size copy of ``raw`` (one copy of ``len(raw)`` bytes)."""
    return bytes(memoryview(raw))


def dumps_kept(value: Any) -> bytes:
    """``orjson.dumps(value)`` in an allocation of its own size, for bytes that are kept."""
    return kept(orjson.dumps(value))
