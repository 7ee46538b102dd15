"""Batches of records straight from a Faust topic's queue, without Faust's stream machinery.

Faust's ``Stream.take_events`` passes every record through the stream's own loop (an event-
loop yield per record, sensors, a task-local current event, a processor that fills the take
buffer) and then waits a whole ``within`` after each batch even when records are already
queued: every cycle carried the batch window on top of the processing and the commit.
Measured with py-spy on the demo at 1,000 tx/s: the stream loop and its passive drainer took
5-7 % of a worker.

``batches`` reads the queue Faust's conductor fills for the topic (the same subscription, the
same fetcher, flow control and rebalance handling) and keeps the two duties a stream has
towards Faust's consumer: a record taken is *tracked* (a rebalance waits until it is
acknowledged) and acknowledged once its batch has been handled; records fetched before a
rebalance (another consumer generation, or while flow is stopped) are acknowledged and dropped,
as Faust's streams drop them.

A batch closes when it holds ``max_size`` records, or ``within`` seconds after the previous
batch was taken when records were already waiting, or ``within`` seconds after its first
record arrived otherwise: under load a batch follows the previous one as soon as it is done
(at least ``within`` apart), and when idle a lone record waits at most ``within``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from fraudstream.workers.processor import RawRecord


@dataclass
class Taken:
    """One batch: the records to process and the Faust events to acknowledge after."""

    records: list[RawRecord]
    events: list[Any]


def raw_record(event: Any) -> RawRecord:
    """The record of a Faust event."""
    m = event.message
    return RawRecord(m.topic, m.partition, m.offset, m.key, m.value, int(m.timestamp * 1000))


class BatchReader:
    """Batches of one topic's records for one agent (see the module docstring)."""

    def __init__(self, app: Any, channel: Any, max_size: int, within: float,
                 clock: Callable[[], float] | None = None) -> None:
        self.app = app
        #: The topic's iterating channel: ``aiter(topic)`` registers it with the conductor.
        self.channel = channel
        self.max_size = max_size
        self.within = within
        #: Monotonic seconds (the running loop's clock unless given).
        self.clock = clock
        self._last_take: float | None = None

    @classmethod
    def of_stream(cls, app: Any, stream: Any, max_size: int, within: float) -> BatchReader:
        """The reader of the topic an agent's ``stream`` would iterate (the stream itself is
        never iterated)."""
        return cls(app, stream.channel.__aiter__(), max_size, within)

    async def take(self) -> list[Any]:
        """The next batch of events (never empty)."""
        queue = self.channel.queue
        clock = self.clock or asyncio.get_running_loop().time
        # qsize, not empty(): Faust's queue also counts an error thrown into it (an actor's
        # stop) as not empty, and get_nowait would then find no record.
        waiting = queue.qsize() > 0
        events = [await queue.get()]
        if waiting and self._last_take is not None:
            deadline = self._last_take + self.within
        else:
            deadline = clock() + self.within
        while len(events) < self.max_size:
            if queue.qsize():
                events.append(queue.get_nowait())
                continue
            remaining = deadline - clock()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    events.append(await queue.get())
            except TimeoutError:
                break
        self._last_take = clock()
        return events

    def keep(self, events: list[Any]) -> list[Any]:
        """The events of the current consumer generation, tracked until acknowledged; the
        others (fetched before a rebalance) acknowledged and dropped."""
        consumer = self.app.consumer
        generation = self.app.consumer_generation_id
        flowing = self.app.flow_control.is_active()
        acking = self.app.topics.acking_topics
        unacked = consumer.unacked
        kept = []
        for event in events:
            message = event.message
            if not flowing or message.generation_id != generation:
                event.ack()
                continue
            if message.topic in acking and not message.tracked:
                message.tracked = True
                unacked.add(message)
            kept.append(event)
        return kept

    async def __aiter__(self) -> AsyncGenerator[Taken, None]:
        while True:
            try:
                taken = await self.take()
            except StopAsyncIteration:
                # Faust stops an agent's actor by throwing this into its queue. The records
                # taken for the next batch were neither tracked nor acknowledged: whoever
                # reads the partition next reads them again.
                return
            events = self.keep(taken)
            if not events:
                continue
            try:
                yield Taken([raw_record(e) for e in events], events)
            finally:
                for event in events:
                    event.ack()
