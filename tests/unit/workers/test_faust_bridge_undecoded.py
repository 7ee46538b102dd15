"""The worker's own topics' records reach their channel undecoded, as Faust's handler would
hand them over with raw serializers: the same key, value, headers and message."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types import TP
from faust.types.tuples import Message

from fraudstream.workers.faust_bridge import deliver_undecoded


def _app() -> Any:
    app = faust.App("undecoded-test", broker="kafka://127.0.0.1:1")
    app.flow_control.resume()  # as after an assignment (delivery waits while suspended)
    return app


def _message(topic: str, key: bytes | None, value: bytes | None) -> Message:
    return Message(topic=topic, partition=1, offset=7, timestamp=1.5, timestamp_type=0,
                   headers=[("h", b"v")], key=key, value=value, checksum=None)


def _handler(app: Any, tp: TP, *channels: Any) -> Any:
    return app.topics._build_handler(tp, set(channels))


def _channel(app: Any) -> Any:
    """The channel an agent iterating the raw topic ``tx`` reads."""
    return app.topic("tx", key_serializer="raw", value_serializer="raw").clone(is_iterator=True)


async def _delivery_to_a_full_queue(app: Any, channel: Any) -> asyncio.Task[None]:
    """A record's delivery to ``channel`` once its queue is full, left waiting."""
    deliver_undecoded(app, ["tx"], producer_buffer=False)
    handler = _handler(app, TP("tx", 1), channel)
    for offset in range(channel.queue.maxsize):
        channel.queue.put_nowait(offset)
    delivery = asyncio.ensure_future(handler(_message("tx", b"k", b"v")))
    await asyncio.sleep(0.01)
    return delivery


def test_a_record_is_handed_over_as_faust_decodes_it_with_raw_serializers() -> None:
    async def main() -> None:
        app = _app()
        channel = _channel(app)
        deliver_undecoded(app, ["tx"], producer_buffer=False)
        handler = _handler(app, TP("tx", 1), channel)
        for key, value in [(b"card-1", b'{"amount": 1}'), (None, None), (b"", b"\xff\x00")]:
            message = _message("tx", key, value)
            expected = await channel.decode(_message("tx", key, value), propagate=True)
            await handler(message)
            event = channel.queue.get_nowait()
            assert event.message is message
            assert (event.key, event.value, event.headers) == (
                expected.key, expected.value, expected.headers)
            assert type(event) is type(expected)
            assert message.refcount == 1  # one channel holds it until acknowledged

    asyncio.run(main())


def test_a_full_buffer_waits_for_a_reader_and_pauses_the_partition() -> None:
    async def main() -> None:
        app = _app()
        channel = _channel(app)
        full: list[Any] = []
        app.sensors.on_topic_buffer_full = full.append
        delivery = await _delivery_to_a_full_queue(app, channel)
        assert not delivery.done() and full == [TP("tx", 1)]
        channel.queue.get_nowait()
        async with asyncio.timeout(1):
            await delivery
        *_, last = [channel.queue.get_nowait() for _ in range(channel.queue.qsize())]
        assert last.value == b"v"

    asyncio.run(main())


def test_other_topics_and_shared_partitions_keep_fausts_handler() -> None:
    app = _app()
    topic = app.topic("tx", key_serializer="raw", value_serializer="raw")
    other = app.topic("other", key_serializer="raw", value_serializer="raw")
    faust_handler = type(app.topics._build_handler(TP("other", 0), {other}))
    deliver_undecoded(app, ["tx"], producer_buffer=False)
    assert type(_handler(app, TP("other", 0), other)) is faust_handler
    two = {topic.clone(is_iterator=True), topic.clone(is_iterator=True)}
    assert type(app.topics._build_handler(TP("tx", 0), two)) is faust_handler
    assert type(_handler(app, TP("tx", 0), topic)) is not faust_handler


def test_with_fausts_producer_buffer_in_use_each_record_waits_for_its_backlog() -> None:
    async def main() -> None:
        app = _app()
        channel = _channel(app)
        waited: list[int] = []

        async def wait_until_ebb() -> None:
            waited.append(1)

        app.producer.buffer.wait_until_ebb = wait_until_ebb
        deliver_undecoded(app, ["tx"], producer_buffer=True)
        await _handler(app, TP("tx", 1), channel)(_message("tx", b"k", b"v"))
        assert waited == [1]
        deliver_undecoded(app, ["tx"], producer_buffer=False)
        await _handler(app, TP("tx", 1), channel)(_message("tx", b"k", b"v"))
        assert waited == [1]

    asyncio.run(main())


def test_a_rebalance_clearing_a_full_buffer_ends_the_delivery_without_cancelling_it() -> None:
    # A rebalance clears the streams' queues, which cancels a put waiting on a full one
    # (mode's FlowControlQueue.clear). Faust's handler waits for that put in a task of its
    # own, so the fetch loop goes on; a cancellation let through to it stopped the worker
    # (Faust's fetcher restarts itself through a supervisor it does not have).
    async def main() -> None:
        app = _app()
        channel = _channel(app)
        delivery = await _delivery_to_a_full_queue(app, channel)
        assert not delivery.done()
        channel.queue.clear()
        async with asyncio.timeout(1):
            await asyncio.wait([delivery])
        assert not delivery.cancelled() and delivery.exception() is None

    asyncio.run(main())
