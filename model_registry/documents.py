"""Parsing what a store holds: JSON documents checked field by field before anything uses them.

A store is not trusted, and neither is what it returns: a document nested 100,000 deep, a
signature that is a number, a list where a mapping belongs. Each of those used to escape as a
``RecursionError`` or ``TypeError`` from deep inside the registry and take every reader down
with it. Here every failure while parsing or checking one document becomes one
``MalformedDocument``, which the registry turns into "this store's copy is invalid" while the
other stores go on serving (and ``verify --repair`` overwrites it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

#: Largest JSON document read from a store (the manifest's reference histograms are the
#: biggest part: ~50 KB for today's feature list); anything larger is not ours.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


class MalformedDocument(ValueError):
    """A stored document is not valid JSON of the expected shape (the store copy is invalid)."""


Check = Callable[[Any], bool]


def is_str(value: Any) -> bool:
    return isinstance(value, str)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def list_of(check: Check) -> Check:
    """A check for a list whose every item passes ``check``."""
    return lambda value: isinstance(value, list) and all(check(v) for v in value)


def dict_of(check: Check) -> Check:
    """A check for a mapping with string keys whose every value passes ``check``."""
    return lambda value: isinstance(value, dict) and all(
        isinstance(k, str) and check(v) for k, v in value.items())


def load_json(raw: bytes) -> Any:
    """The JSON value of ``raw``; MalformedDocument for anything that cannot be parsed.

    ``json.loads`` raises RecursionError (not ValueError) on deep nesting, and the size cap
    keeps a huge blob from being parsed at all.
    """
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise MalformedDocument(f"document of {len(raw)} bytes is over the "
                                f"{MAX_DOCUMENT_BYTES} byte limit")
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise MalformedDocument("document nested too deeply") from exc
    except (ValueError, TypeError) as exc:
        raise MalformedDocument(f"not JSON ({_short(exc)})") from exc


def checked_fields(body: Any, required: Mapping[str, Check],
                   optional: Mapping[str, Check] | None = None) -> dict[str, Any]:
    """``body`` if it is a JSON object with exactly these fields of these types.

    Raises MalformedDocument naming the first field that is missing, unknown or mistyped.
    """
    optional = optional or {}
    if not isinstance(body, dict):
        raise MalformedDocument(f"expected a JSON object, got {type(body).__name__}")
    unknown = sorted(k for k in body if k not in required and k not in optional)
    if unknown:
        raise MalformedDocument(f"unknown fields {unknown[:5]}")
    missing = [name for name in required if name not in body]
    if missing:
        raise MalformedDocument(f"field {missing[0]!r} is missing")
    for name, value in body.items():
        check = required.get(name) or optional[name]
        try:
            ok = check(value)
        except RecursionError:
            ok = False
        if not ok:
            raise MalformedDocument(f"field {name!r} has the wrong type "
                                    f"({type(value).__name__})")
    return body


def _short(exc: Exception, limit: int = 120) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "…"
