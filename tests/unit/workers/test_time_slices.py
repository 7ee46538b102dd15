"""Work cut into slices: the event loop gets a turn once a slice has used its budget, never
before, and every item still comes through in order."""

from __future__ import annotations

import asyncio

from fraudstream.workers.time_slices import Slices


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_turn_is_given_only_once_the_budget_is_used() -> None:
    clock = Clock()
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async def work() -> None:
        slices = Slices(0.002, clock=clock)
        task = asyncio.create_task(other())
        clock.now = 0.0019
        await slices.pause()
        assert ran == [] and slices.turns == 0, "within the budget: no turn"
        clock.now = 0.002
        await slices.pause()
        assert ran == ["other"] and slices.turns == 1, "budget used: the ready task ran"
        # The budget starts again at the turn.
        clock.now = 0.0035
        await slices.pause()
        assert slices.turns == 1
        clock.now = 0.0041
        await slices.pause()
        assert slices.turns == 2
        await task

    asyncio.run(work())


def test_each_yields_every_item_in_order_and_lets_others_run_between() -> None:
    clock = Clock()
    seen: list[object] = []

    async def ticker() -> None:
        while True:
            seen.append("tick")
            await asyncio.sleep(0)

    async def work() -> list[int]:
        task = asyncio.create_task(ticker())
        out = []
        async for item in Slices(0.001, clock=clock).each(range(4)):
            clock.now += 0.001  # each item uses a whole slice
            out.append(item)
            seen.append(item)
        task.cancel()
        return out

    assert asyncio.run(work()) == [0, 1, 2, 3]
    # The ticker ran between items (after the first, whose slice had not been used yet).
    assert seen[:1] == [0] and seen.count("tick") >= 3
    assert [x for x in seen if x != "tick"] == [0, 1, 2, 3]
