"""Faust's fetch loop hands records to streams in place, with a task only when one waits."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from mode import Service

from fraudstream.workers.faust_bridge import deliver_without_tasks


def _wait_first() -> Any:
    deliver_without_tasks()
    return Consumer.wait_first


async def _tasks_created_while(awaitable: Any) -> tuple[Any, int]:
    created = 0
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()

    def counting(loop: Any, coro: Any, **kwargs: Any) -> Any:
        nonlocal created
        created += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        return await awaitable, created
    finally:
        loop.set_task_factory(factory)


def test_a_delivery_that_does_not_wait_runs_in_place_without_tasks() -> None:
    async def main() -> None:
        service, flow = Service(), asyncio.Event()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=2)
        suspended = flow.wait()
        result, created = await _tasks_created_while(
            _wait_first()(service, queue.put(1), suspended))
        assert created == 0
        assert queue.get_nowait() == 1
        assert result.stopped is False and result.results == [None]
        assert inspect.getcoroutinestate(suspended) == inspect.CORO_CLOSED

    asyncio.run(main())


def test_a_delivery_that_waits_goes_on_in_a_task_until_it_is_done() -> None:
    async def main() -> None:
        service, flow = Service(), asyncio.Event()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        queue.put_nowait(0)  # full: the delivery has to wait for a reader

        async def deliver() -> str:
            await queue.put(1)
            await asyncio.sleep(0)  # a bare yield on the way
            return "delivered"

        async def reader() -> None:
            await asyncio.sleep(0.05)
            assert queue.get_nowait() == 0

        read = asyncio.ensure_future(reader())
        result = await _wait_first()(service, deliver(), flow.wait())
        await read
        assert result.results[0] == "delivered"
        assert queue.get_nowait() == 1

    asyncio.run(main())


def test_a_waiting_delivery_is_interrupted_when_the_flow_is_suspended() -> None:
    async def main() -> None:
        service, flow = Service(), asyncio.Event()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        queue.put_nowait(0)
        asyncio.get_running_loop().call_later(0.05, flow.set)

        result = await _wait_first()(service, queue.put(1), flow.wait())

        assert result.results == [True]  # the flow's event won; the delivery was cancelled
        assert queue.qsize() == 1

    asyncio.run(main())


def test_a_delivery_that_fails_raises_in_the_fetch_loop() -> None:
    async def fails() -> None:
        raise ValueError("no stream for this topic")

    async def main() -> None:
        await _wait_first()(Service(), fails(), asyncio.Event().wait())

    with pytest.raises(ValueError, match="no stream"):
        asyncio.run(main())
