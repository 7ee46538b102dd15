"""Long synchronous stretches of work cut into short slices, so the scoring step runs between them.

A worker's agents share one event loop. The label path handles a second's labels at a time
(``label_batch_window_s``: one Kafka transaction per partition and hop per batch): looking up
each label's decision, routing it, decoding, updating and encoding each merchant's state. Done
in one go, that held the loop for up to 66 ms of a worker's every second (measured 2026-12-03,
two workers at 1,000 tx/s with labels), and every scoring batch due meanwhile waited behind
it: the latency tail came in bursts once a second. ``Slices.pause`` gives the loop a turn
whenever the current slice has run ``budget_s``; the work and its transactions stay the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

#: Longest stretch (seconds) of label work between two turns of the event loop.
SLICE_S = 0.002


class Slices:
    """A budget of ``budget_s`` seconds of uninterrupted work, renewed at each loop turn."""

    def __init__(self, budget_s: float = SLICE_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.budget_s = budget_s
        self.clock = clock
        self._since = clock()
        #: Turns given to the loop so far.
        self.turns = 0

    async def pause(self) -> None:
        """Let the event loop run what is ready if this slice has used its budget."""
        if self.clock() - self._since >= self.budget_s:
            await asyncio.sleep(0)
            self.turns += 1
            self._since = self.clock()

    async def each(self, items: Iterable[T]) -> AsyncIterator[T]:
        """``items``, with a pause (when due) before each."""
        for item in items:
            await self.pause()
            yield item
