"""Merchant states decoded once per stored value instead of once per batch.

Decoding a merchant's state (``MerchantState.from_wire``) measured as the largest single cost
of the scoring step (about 10 % of a worker's CPU at 1,000 tx/s with labels, 2026-12-01): a
batch of a few dozen transactions meets a few dozen merchants, and each was decoded again in
every batch although its state changes at most once per label batch. ``DecodedTable`` keeps
the decoded state beside the stored value it came from and decodes again only when the table
holds another value for that key. The scoring step reads merchant features through one
(``MerchantStates``), the label path's applier its merchants' records through another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from fraudstream.features import MerchantState

#: Decoded states kept at most; beyond, the least recently decoded are dropped first.
MAX_CACHED = 100_000

T = TypeVar("T")


def as_is(stored: Any) -> Any:
    """The stored value is already the wire form (a table of decoded values)."""
    return stored


class DecodedTable(Generic[T]):
    """Read-only ``build(wire form)`` per key, from ``table``'s stored values.

    ``decode`` turns a stored value into the wire form ``build`` reads (``orjson.loads`` for a
    table of raw bytes); ``build(None)`` stands for a key the table lacks. A cached value is
    used while the table holds the same stored value (the same object, or an equal one);
    callers must not change it.
    """

    def __init__(self, table: Mapping[bytes, Any], build: Callable[[Any], T],
                 decode: Callable[[Any], Any] = as_is, max_cached: int = MAX_CACHED) -> None:
        self.table = table
        self.build = build
        self.decode = decode
        self.max_cached = max_cached
        self._cache: dict[bytes, tuple[Any, T]] = {}
        #: Decodes done (misses), for tests and profiling.
        self.decoded = 0

    def get(self, key: bytes) -> T:
        stored = self.table.get(key)
        hit = self._cache.get(key)
        if hit is not None and (hit[0] is stored or hit[0] == stored):
            return hit[1]
        value = self.build(None if stored is None else self.decode(stored))
        self.decoded += 1
        self.prime(key, stored, value)
        return value

    def prime(self, key: bytes, stored: Any, value: T) -> None:
        """Take ``value`` as what ``stored`` builds for ``key``: a writer that has both (the
        label path's applier, which encoded ``stored`` from ``value``) spares the decode of
        its own write when the table's copy holds it. ``value`` must not change afterwards."""
        if self.max_cached <= 0:
            return
        cache = self._cache
        if key in cache:
            del cache[key]  # re-inserted last: the dict's order is the order of decoding
        elif len(cache) >= self.max_cached:
            del cache[next(iter(cache))]
        cache[key] = (stored, value)


class MerchantStates(DecodedTable[MerchantState]):
    """Read-only ``MerchantState`` per merchant key (the scoring step's merchant features).

    ``committed(key)``, when given, is consulted first: a state this worker has committed but
    its table copy may not hold yet (the label path's own writes; None: read the table). A
    copy applies a write only once it has read it back from the changelog, after the
    transaction's markers: scoring from the copy alone, a transaction that came right after a
    label was applied (as the online/offline parity test sends it) could miss that label.
    """

    def __init__(self, table: Mapping[bytes, Any], decode: Callable[[Any], Any] = as_is,
                 max_cached: int = MAX_CACHED,
                 committed: Callable[[bytes], MerchantState | None] | None = None) -> None:
        super().__init__(table, MerchantState.from_wire, decode, max_cached)
        self.committed = committed

    def get(self, key: bytes) -> MerchantState:
        if self.committed is not None:
            mine = self.committed(key)
            if mine is not None:
                return mine
        return super().get(key)
