"""MerchantStates: a merchant's state is decoded once per value its table holds."""

from __future__ import annotations

import orjson

from fraudstream.features import MerchantState
from fraudstream.workers.merchant_states import MerchantStates

DAY = 86_400


def wire_with(*labels: tuple[int, bool]) -> bytes:
    state = MerchantState()
    for ts, is_fraud in labels:
        state.observe_label(ts, is_fraud)
    return orjson.dumps(state.to_wire())


def test_decodes_once_while_the_stored_value_stays_the_same() -> None:
    table = {b"M1": wire_with((100 * DAY, True))}
    states = MerchantStates(table, orjson.loads)
    first = states.get(b"M1")
    assert states.get(b"M1") is first
    # An equal value stored again (a changelog record repeating the state) is a hit too.
    table[b"M1"] = bytes(bytearray(table[b"M1"]))
    assert states.get(b"M1") is first
    assert states.decoded == 1


def test_a_new_value_is_decoded_again() -> None:
    table = {b"M1": wire_with((100 * DAY, True))}
    states = MerchantStates(table, orjson.loads)
    before = states.get(b"M1").features(110 * DAY, DAY)
    table[b"M1"] = wire_with((100 * DAY, True), (100 * DAY + 5, False))
    after = states.get(b"M1").features(110 * DAY, DAY)
    assert states.decoded == 2
    assert after != before
    assert after == MerchantState.from_wire(orjson.loads(table[b"M1"])).features(110 * DAY, DAY)


def test_an_unknown_merchant_has_an_empty_state() -> None:
    states = MerchantStates({}, orjson.loads)
    assert states.get(b"nobody") == MerchantState()
    # A merchant that appears later is read then.
    states.table = {b"nobody": wire_with((5 * DAY, False))}
    assert states.get(b"nobody") != MerchantState()


def test_the_cache_is_bounded() -> None:
    table = {f"M{i}".encode(): wire_with((100 * DAY + i, False)) for i in range(10)}
    states = MerchantStates(table, orjson.loads, max_cached=4)
    for key in table:
        states.get(key)
    assert len(states._cache) == 4
    # The most recently decoded are kept.
    assert set(states._cache) == {b"M6", b"M7", b"M8", b"M9"}
