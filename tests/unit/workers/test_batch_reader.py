"""BatchReader: batches from a topic's queue, tracked and acknowledged as Faust's streams do."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from fraudstream.workers.batch_reader import BatchReader, raw_record

TOPIC = "tx"


@dataclass(eq=False)
class Message:
    offset: int
    generation_id: int = 1
    topic: str = TOPIC
    partition: int = 0
    key: bytes = b"k"
    value: bytes = b"v"
    timestamp: float = 1.5
    tracked: bool = False
    acks: int = 0


@dataclass(eq=False)
class Event:
    message: Message

    def ack(self) -> bool:
        self.message.acks += 1
        return True


@dataclass
class App:
    consumer_generation_id: int = 1
    active: bool = True
    unacked: set[Any] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.consumer = SimpleNamespace(unacked=self.unacked)
        self.flow_control = SimpleNamespace(is_active=lambda: self.active)
        self.topics = SimpleNamespace(acking_topics={TOPIC})


def reader(app: App, queue: asyncio.Queue[Event], max_size: int = 10,
           within: float = 0.05) -> BatchReader:
    return BatchReader(app, SimpleNamespace(queue=queue), max_size, within)


def test_a_full_batch_closes_at_once_and_the_rest_waits_for_the_next() -> None:
    async def run() -> None:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        for offset in range(25):
            queue.put_nowait(Event(Message(offset)))
        r = reader(App(), queue, max_size=10, within=30.0)
        async with asyncio.timeout(1):
            first = await r.take()
            second = await r.take()
        assert [e.message.offset for e in first] == list(range(10))
        assert [e.message.offset for e in second] == list(range(10, 20))

    asyncio.run(run())


def test_a_lone_record_waits_at_most_the_window_and_gathers_what_arrives_in_it() -> None:
    async def run() -> None:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        r = reader(App(), queue, within=0.3)

        async def trickle() -> None:
            for offset in range(3):
                queue.put_nowait(Event(Message(offset)))
                await asyncio.sleep(0.05)

        loop = asyncio.get_running_loop()
        started = loop.time()
        feeding = asyncio.ensure_future(trickle())
        batch = await r.take()
        took = loop.time() - started
        await feeding
        assert [e.message.offset for e in batch] == [0, 1, 2]
        assert 0.25 <= took < 1.0

    asyncio.run(run())


def test_records_waiting_after_a_slow_batch_are_taken_without_a_new_window() -> None:
    async def run() -> None:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        r = reader(App(), queue, within=0.2)
        queue.put_nowait(Event(Message(0)))
        await r.take()  # the window runs out: nothing else came
        await asyncio.sleep(0.3)  # a batch that took longer than the window
        queue.put_nowait(Event(Message(1)))
        loop = asyncio.get_running_loop()
        started = loop.time()
        batch = await r.take()
        assert [e.message.offset for e in batch] == [1]
        assert loop.time() - started < 0.1

    asyncio.run(run())


def test_records_of_an_old_generation_are_acknowledged_and_dropped() -> None:
    async def run() -> None:
        app = App(consumer_generation_id=2)
        queue: asyncio.Queue[Event] = asyncio.Queue()
        old, new = Event(Message(0, generation_id=1)), Event(Message(1, generation_id=2))
        queue.put_nowait(old)
        queue.put_nowait(new)
        batches = reader(app, queue, within=0.01).__aiter__()
        async with asyncio.timeout(1):
            taken = await batches.__anext__()
        assert [r.offset for r in taken.records] == [1]
        assert old.message.acks == 1 and not old.message.tracked
        # Tracked (a rebalance waits for it) and not acknowledged while being processed.
        assert new.message.tracked and new.message in app.unacked and new.message.acks == 0
        queue.put_nowait(Event(Message(2, generation_id=2)))
        async with asyncio.timeout(1):
            await batches.__anext__()
        assert new.message.acks == 1
        await batches.aclose()

    asyncio.run(run())


def test_nothing_is_kept_while_flow_is_stopped() -> None:
    app = App(active=False)
    events = [Event(Message(0)), Event(Message(1))]
    assert reader(app, asyncio.Queue()).keep(events) == []
    assert [e.message.acks for e in events] == [1, 1]


def test_raw_record_carries_the_message() -> None:
    r = raw_record(Event(Message(7, partition=3)))
    assert (r.topic, r.partition, r.offset, r.key, r.value, r.timestamp_ms) == \
        (TOPIC, 3, 7, b"k", b"v", 1500)


def test_faust_stopping_the_actor_ends_the_batches_cleanly() -> None:
    """Faust stops an agent's actor by throwing StopAsyncIteration into its queue; raised
    inside the reader's generator it would become a RuntimeError (the agent "crashed" on
    every stop and the worker hung until killed)."""
    from mode.utils.queues import FlowControlEvent, ThrowableQueue

    async def run() -> list[list[int]]:
        flow = FlowControlEvent()
        flow.resume()
        queue: ThrowableQueue[Event] = ThrowableQueue(flow_control=flow)
        got: list[list[int]] = []

        async def consume() -> None:
            async for taken in reader(App(), queue, within=0.05):
                got.append([r.offset for r in taken.records])

        task = asyncio.ensure_future(consume())
        queue.put_nowait(Event(Message(0)))
        await asyncio.sleep(0.2)
        queue.put_nowait(Event(Message(1)))  # taken, then the stop arrives in its window
        await asyncio.sleep(0.01)
        queue._throw(StopAsyncIteration())
        async with asyncio.timeout(1):
            await task
        queue._throw(StopAsyncIteration())  # with nobody waiting: kept for the next get
        task = asyncio.ensure_future(consume())
        async with asyncio.timeout(1):
            await task
        return got

    assert asyncio.run(run()) == [[0]]
