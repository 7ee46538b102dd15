"""Reading a range of a partition: to its end, past offsets without records, or not at all."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from fraudstream.workers import takeover
from fraudstream.workers.takeover import ShortRead, TakeoverScan


@dataclass
class Rec:
    offset: int
    value: bytes = b"{}"


class FakeConsumer:
    """A partition whose records sit at ``offsets``; the fetch position never passes ``end``
    (a broker that stops handing records over)."""

    def __init__(self, offsets: list[int], end: int) -> None:
        self.offsets, self.end, self.pos = offsets, end, 0

    def assign(self, tps: list[Any]) -> None:
        pass

    def seek(self, tp: Any, offset: int) -> None:
        self.pos = offset

    async def getmany(self, tp: Any, timeout_ms: int, max_records: int) -> dict[Any, list[Rec]]:
        got = [Rec(o) for o in self.offsets if self.pos <= o < self.end][:max_records]
        if got:
            self.pos = got[-1].offset + 1
        else:
            # No record left below the end: the position moves over markers up to it.
            self.pos = max(self.pos, self.end)
        return {tp: got} if got else {}

    async def position(self, tp: Any) -> int:
        return self.pos


def scan(consumer: FakeConsumer) -> TakeoverScan:
    s = TakeoverScan("127.0.0.1:1", ["scores"])
    s._consumer = consumer
    return s


def test_a_range_is_read_past_offsets_that_hold_no_record() -> None:
    # 3 and 7 hold transaction markers: read committed, they hand over nothing.
    consumer = FakeConsumer([0, 1, 2, 4, 5, 6, 8, 9], end=10)
    found = asyncio.run(scan(consumer).records("tx", 0, 1, 9))
    assert [r.offset for r in found] == [1, 2, 4, 5, 6, 8]


def test_a_read_that_cannot_reach_its_end_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(takeover, "STALLED_POLLS", 3)
    consumer = FakeConsumer(list(range(10)), end=6)  # records 6.. are never handed over
    with pytest.raises(ShortRead) as caught:
        asyncio.run(scan(consumer).records("tx", 2, 0, 10))
    assert (caught.value.partition, caught.value.position, caught.value.stop) == (2, 6, 10)
    assert "stopped at offset 6 before 10" in str(caught.value)


def test_a_slow_read_that_keeps_moving_is_not_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(takeover, "STALLED_POLLS", 2)

    class Trickle(FakeConsumer):
        """Hands over one record every third poll."""

        polls = 0

        async def getmany(self, tp: Any, timeout_ms: int,
                          max_records: int) -> dict[Any, list[Rec]]:
            self.polls += 1
            if self.polls % 3:
                return {}
            return await super().getmany(tp, timeout_ms, 1)

    consumer = Trickle(list(range(6)), end=6)
    found = asyncio.run(scan(consumer).records("tx", 0, 0, 6))
    assert [r.offset for r in found] == list(range(6))
