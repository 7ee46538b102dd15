"""Every use of a private Faust or aiokafka attribute by the worker, and a check of them.

Faust offers no public way to make its producer idempotent outside its exactly-once mode, to
read the group's committed offsets, to reach the aiokafka producer inside its own, or to write
a table partition other than the current event's. The worker needs all four. They live here,
and ``check_internals`` runs when a worker starts: an upgrade of faust-streaming or aiokafka
that renames one of them stops the worker at once with a message naming it, instead of
failing in the middle of a batch. (``workers.card_store`` subclasses Faust's stores,
``workers.batch_reader`` reads Faust's topic queues as its streams do, and
``workers.stable_offsets`` sends a request aiokafka has no method for; the attributes they
rely on are checked here too.)
"""

from __future__ import annotations

import asyncio
import collections.abc
import inspect
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, cast


class FaustInternalsChanged(RuntimeError):
    """An installed faust-streaming or aiokafka lacks an attribute the worker relies on."""


#: (module, class, attribute) that must exist, and what the worker uses it for.
REQUIRED: tuple[tuple[str, str, str, str], ...] = (
    ("faust.transport.drivers.aiokafka", "Producer", "_settings_extra",
     "idempotent producer settings"),
    ("faust.transport.drivers.aiokafka", "Producer", "_ensure_producer",
     "the aiokafka producer behind Faust's (batch sends)"),
    ("faust.transport.consumer", "Consumer", "_committed_offset",
     "the group's committed offsets (offset continuity, lag)"),
    ("faust.transport.consumer", "Consumer", "perform_seek",
     "starts past a partition's end moved to its first record"),
    ("faust.transport.consumer", "Consumer", "_should_commit",
     "offsets committed by the worker's transactions, not by Faust"),
    ("faust.transport.consumer", "Consumer", "_add_gap",
     "no offset-gap bookkeeping for offsets the worker's transactions commit"),
    ("faust.transport.consumer", "Consumer", "_gap",
     "no offset-gap bookkeeping for offsets the worker's transactions commit"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread",
     "_create_worker_consumer", "a consumer that reads committed"),
    ("faust.tables.recovery", "Recovery", "_build_highwaters",
     "recovery targets past transaction markers"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "_isolation_level",
     "a consumer that reads committed"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "_fetch_max_wait_ms",
     "offset lookups not queued behind a 1.5 s fetch (recovery time)"),
    ("faust.tables.recovery", "Recovery", "_build_offsets",
     "recovery targets past transaction markers"),
    ("faust.tables.recovery", "Recovery", "standby_highwaters",
     "recovery targets past transaction markers"),
    ("faust.tables.recovery", "Recovery", "active_offsets", "recovery past aborted data"),
    ("faust.tables.recovery", "Recovery", "buffers",
     "how far the merchants table has applied its changelog (label path)"),
    ("faust.tables.recovery", "Recovery", "active_highwaters", "recovery past aborted data"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "_consumer",
     "recovery past aborted data (the consumer's positions)"),
    ("faust.stores.rocksdb", "Store", "_db_for_partition", "card table writes by partition"),
    ("faust.stores.rocksdb", "Store", "offset_key", "the card table's changelog offset"),
    ("faust.stores.rocksdb", "Store", "partition_path", "rebuilding a foreign partition"),
    ("faust.stores.memory", "Store", "_key_partition", "card table writes by partition"),
    ("faust.transport.consumer", "Consumer", "wait_first",
     "records handed to streams without four tasks each"),
    ("faust.transport.consumer", "Consumer", "_drain_messages",
     "records handed to streams without four tasks each"),
    ("aiokafka.producer.producer", "AIOKafkaProducer", "create_batch", "batch sends"),
    ("aiokafka.producer.producer", "AIOKafkaProducer", "send_batch", "batch sends"),
    ("aiokafka.protocol.api", "RequestStruct", "FLEXIBLE_VERSION",
     "where a new owner starts (OffsetFetch v7, workers.stable_offsets)"),
    ("aiokafka.client", "AIOKafkaClient", "coordinator_lookup",
     "where a new owner starts (OffsetFetch v7, workers.stable_offsets)"),
    # The one private use outside this module: a reader below the workers' layer refreshes
    # its client's metadata for a topic created after it connected (fraudstream.streaming).
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "_client",
     "readers that see a topic created after they connected (fraudstream.streaming)"),
    ("faust.channels", "Channel", "queue", "batches read from a topic's queue"),
    ("faust.transport.consumer", "Consumer", "unacked",
     "batches read from a topic's queue, tracked until acknowledged (rebalances wait)"),
    ("faust.transport.conductor", "Conductor", "acking_topics",
     "batches read from a topic's queue, tracked until acknowledged (rebalances wait)"),
    ("faust.types.tuples", "Message", "tracked",
     "batches read from a topic's queue, tracked until acknowledged (rebalances wait)"),
    ("faust.types.tuples", "Message", "time_in",
     "each record's arrival in the worker (fraudstream_batch_wait_seconds)"),
    ("faust.transport.drivers.aiokafka", "Consumer", "_to_message",
     "each record's arrival in the worker (fraudstream_batch_wait_seconds)"),
    ("faust.types.tuples", "Message", "generation_id",
     "batches read from a topic's queue: records fetched before a rebalance dropped"),
    ("faust.transport.conductor", "Conductor", "_build_handler",
     "the worker's own topics' records handed over undecoded"),
    ("faust.types.tuples", "Message", "refcount",
     "the worker's own topics' records handed over undecoded"),
    ("faust.channels", "Channel", "put", "the worker's own topics' records handed over "
     "undecoded (a full buffer)"),
    ("faust.transport.producer", "ProducerBuffer", "wait_until_ebb",
     "the worker's own topics' records handed over undecoded"),
    ("mode.worker", "Worker", "_signal_stop_time",
     "a stop announced only when one was asked for (a worker that fails is not draining)"),
)


#: (module, attribute) of module-level values the worker relies on, and what for.
REQUIRED_MODULE_VALUES: tuple[tuple[str, str, str], ...] = (
    ("aiokafka.producer.sender", "BACKOFF_OVERRIDE",
     "a transaction begun while the previous one's markers are written retries sooner"),
)


def missing_internals() -> list[str]:
    """Each required attribute the installed libraries lack, as ``module.Class.attr (use)``."""
    import importlib

    missing = []
    for module_name, attribute, use in REQUIRED_MODULE_VALUES:
        try:
            found = hasattr(importlib.import_module(module_name), attribute)
        except ImportError:
            found = False
        if not found:
            missing.append(f"{module_name}.{attribute} ({use})")
    for module_name, class_name, attribute, use in REQUIRED:
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{class_name} ({use})")
            continue
        if not _has(cls, attribute):
            missing.append(f"{module_name}.{class_name}.{attribute} ({use})")
    return missing


def _has(cls: type, attribute: str) -> bool:
    """Class attributes, or instance attributes assigned in ``__init__``/``__post_init__``."""
    if hasattr(cls, attribute):
        return True
    import inspect

    for klass in cls.__mro__:
        for method in ("__init__", "__post_init__"):
            func = klass.__dict__.get(method)
            if func is None:
                continue
            try:
                source = inspect.getsource(func)
            except (OSError, TypeError):
                continue
            if f"self.{attribute}" in source:
                return True
    return False


def check_internals() -> None:
    """Raise ``FaustInternalsChanged`` naming every missing attribute and the versions."""
    missing = missing_internals()
    if missing:
        from importlib.metadata import version

        raise FaustInternalsChanged(
            f"faust-streaming {version('faust-streaming')} / aiokafka {version('aiokafka')} "
            f"lack what the worker relies on: {'; '.join(missing)}. Install the versions "
            "pyproject.toml allows (pip install -e .), or update workers/faust_bridge.py")


def use_idempotent_producer() -> None:
    """Make Faust's aiokafka producer idempotent (acks=all, sequence numbers per partition).

    Faust turns idempotence on only in its exactly-once mode, which this worker does not use
    (see workers/takeover.py). Without it, a produce retried after a broker failure can be
    written twice: measured, 11 duplicate outputs when one of three brokers was SIGKILLed.
    """
    from faust.transport.drivers import aiokafka as faust_aiokafka

    def settings_extra(self: Any) -> dict[str, Any]:
        return {"acks": "all", "enable_idempotence": True}

    cast(Any, faust_aiokafka.Producer)._settings_extra = settings_extra


def stamp_arrivals() -> None:
    """Stamp each record with the moment Faust's consumer turns it into a message on the event
    loop (``Message.time_in``, monotonic; ``workers.arrivals`` splits its time there).

    Faust's own monitor sets ``time_in`` only when a stream tracks the message, which the
    batch reader does itself (``workers.batch_reader``): without this every record's stays
    None.
    """
    from faust.transport.drivers import aiokafka as faust_aiokafka

    klass = cast(Any, faust_aiokafka.Consumer)
    if getattr(klass, "_fraudstream_stamps_arrivals", False):
        return
    to_message = klass._to_message

    def to_message_stamped(self: Any, tp: Any, record: Any) -> Any:
        message = to_message(self, tp, record)
        message.time_in = time.monotonic()
        return message

    klass._to_message = to_message_stamped
    klass._fraudstream_stamps_arrivals = True


#: How long aiokafka waits before it sends again the AddPartitionsToTxn of a transaction
#: that the coordinator refused with CONCURRENT_TRANSACTIONS: the previous transaction of the
#: same producer has committed but its markers are still being written (KAFKA-5477). aiokafka
#: waits 20 ms; the markers take a few. Every input partition's producer begins its next
#: transaction one batch after the last: measured on this project's machine (one producer,
#: 200 transactions of 11 records and an offset, batches closed), back to back 25.2 ms per
#: transaction at the median with 20 ms, 9.1 ms with 5 ms and 3.5 ms with 2 ms; 5 ms apart,
#: p99 18.3 ms with 20 ms and 9.6 ms with 2 ms.
CONCURRENT_TRANSACTIONS_BACKOFF_S = 0.002


def retry_concurrent_transactions_sooner() -> None:
    """Set aiokafka's retry wait after CONCURRENT_TRANSACTIONS to
    ``CONCURRENT_TRANSACTIONS_BACKOFF_S`` (process-wide; only transactional producers meet
    it)."""
    from aiokafka.producer import sender

    cast(Any, sender).BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_S


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The group's committed offset (next to read) of ``tp`` as Faust's consumer knows it."""
    return cast(int | None, consumer._committed_offset.get(tp))


def aiokafka_producer(faust_producer: Any) -> Any:
    """The aiokafka producer inside Faust's producer (it exists once the app runs)."""
    return faust_producer._ensure_producer()


#: How long a fetch of the worker's consumer may wait at the broker for data (Faust fixes it
#: at 1,500 ms). The broker answers one request per connection at a time, so a ListOffsets
#: request queues behind the consumer's pending fetch: measured, each of the four offset
#: lookups of Faust's recovery took 1.5 s while its partitions were idle, about 6 s at a
#: worker's start and at a rebalance while it fetches (a standby taking over a slot has no
#: fetch pending and was already quick). The wait also bounds how long records of a partition
#: left out of the fetch in flight (its last records were still buffered) wait for the next
#: one: p99 at 300 tx/s went from 705-780 ms to 228-265 ms (README, "Failover and chaos
#: tests"). Under load a fetch returns as soon as records are there, so the shorter wait costs
#: only idle fetches (ten a second per worker).
FETCH_MAX_WAIT_MS = 100


def tune_worker_consumer() -> None:
    """Make the worker's Faust consumer read committed, and wait less at the broker.

    Read committed: records of aborted transactions (a fenced worker's outputs, an upstream
    producer's aborted input) never reach a stream or a table's recovery. Faust reads
    committed only in its own exactly-once mode. The wait: ``FETCH_MAX_WAIT_MS``.
    """
    from faust.transport.drivers import aiokafka as faust_aiokafka

    thread = cast(Any, faust_aiokafka.AIOKafkaConsumerThread)
    if getattr(thread, "_fraudstream_tuned", False):
        return
    create = thread._create_worker_consumer

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._isolation_level = "read_committed"
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    thread._create_worker_consumer = create_worker_consumer
    thread._fraudstream_tuned = True


class _Resumed(collections.abc.Coroutine):
    """A coroutine already run up to its first wait, for an asyncio Task to drive from there:
    its first step hands the Task what the coroutine waits on, later ones go to the coroutine.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def send(self, value: Any) -> Any:
        first = self._first
        if first is not _SENT:
            self._first = _SENT
            return first
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        self._first = _SENT
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Any:
        return self

    def __next__(self) -> Any:
        return self.send(None)


_SENT = object()


def deliver_without_tasks() -> None:
    """Hand each fetched record to its streams without four asyncio tasks per record.

    Faust's fetch loop (``Consumer._drain_messages``) delivers every record with
    ``wait_first(deliver(record), suspend_flow.wait())``: mode's ``wait_first`` wraps each of
    them, and the service's stopped and crashed events, in a task, waits for the first to end
    and cancels the other three. Measured (py-spy, a worker at 1,000 tx/s with labels, three
    records per transaction counting the label hops and the merchants table): about 10 % of
    the worker's CPU. Delivery only waits when a stream's buffer is full; so the delivery is
    first run in place, and when it finishes without waiting (the usual case) that is the
    answer. When it does wait, it goes on in a task and Faust's own ``wait_first`` waits for it
    exactly as before (so a rebalance's suspended flow still interrupts it).
    """
    from faust.transport.consumer import Consumer
    from mode.services import WaitResults

    klass = cast(Any, Consumer)
    if getattr(klass, "_fraudstream_direct_delivery", False):
        return
    wait_first = klass.wait_first

    async def wait_first_in_place(self: Any, *coros: Any, timeout: Any = None) -> Any:
        first = coros[0] if coros else None
        if (timeout is None and isinstance(first, types.CoroutineType)
                and inspect.getcoroutinestate(first) == inspect.CORO_CREATED):
            try:
                waits_on = first.send(None)
            except BaseException as ended:
                for other in coros[1:]:
                    if isinstance(other, types.CoroutineType):
                        other.close()  # never started: no "never awaited" warning
                if isinstance(ended, StopIteration):
                    return WaitResults([first], [ended.value], False)
                raise
            coros = (_Resumed(first, waits_on), *coros[1:])
        return await wait_first(self, *coros, timeout=timeout)

    klass.wait_first = wait_first_in_place
    klass._fraudstream_direct_delivery = True


def deliver_undecoded(app: Any, topics: Iterable[str], *, producer_buffer: bool) -> None:
    """Hand each record of ``topics`` to the one channel reading it, as it came.

    Faust's handler for a topic partition (the Cython ``ConductorHandler``) deserialises every
    record through the channel's schema (the serializer registry, twice) and builds its event
    through the app's settings; with raw serializers that decoding returns the record's own
    key and value. The batch reader reads only ``event.message`` (``workers.batch_reader``).
    Measured (py-spy, one worker draining 150,000 transactions with their labels): the
    decoding, the event and the producer-buffer check were 9 % of the event loop's samples.

    The handler here keeps what Faust's does for a channel: flow control (a rebalance stops
    delivery), the message's reference count (one per channel), the queue's pressure
    callbacks (a full buffer pauses fetching from the partition), a wait when the queue is
    full, and the app's own ``Event`` class with the record's key, value and headers.
    ``producer_buffer``: whether anything writes through Faust's producer buffer (tables
    written with Faust's own ``__setitem__``: the merchants table at least once), whose
    backlog Faust waits for before each record; under exactly once nothing does. A partition
    read by more than one channel keeps Faust's handler.
    """
    names = frozenset(topics)
    conductor = app.topics
    build = conductor._build_handler

    def build_handler(tp: Any, channels: Any) -> Any:
        if tp.topic in names and len(channels) == 1:
            return _undecoded_handler(app, tp, next(iter(channels)), producer_buffer)
        return build(tp, channels)

    conductor._build_handler = build_handler


def _undecoded_handler(app: Any, tp: Any, channel: Any,
                       producer_buffer: bool) -> Callable[[Any], Coroutine[Any, Any, None]]:
    acquire_flow_control = app.flow_control.acquire
    wait_until_ebb = app.producer.buffer.wait_until_ebb if producer_buffer else None
    on_topic_buffer_full = app.sensors.on_topic_buffer_full
    consumer = app.consumer
    event_class = app.conf.Event

    def on_pressure_high() -> None:
        on_topic_buffer_full(tp)
        consumer.on_buffer_full(tp)

    def on_pressure_drop() -> None:
        consumer.on_buffer_drop(tp)

    async def on_message(message: Any) -> None:
        await acquire_flow_control()
        if wait_until_ebb is not None:
            await wait_until_ebb()
        message.refcount += 1  # message.incref(1): one channel
        event = event_class(app, message.key, message.value, message.headers, message)
        queue = channel.queue
        if queue.full():
            on_topic_buffer_full(tp)
            # In a task of its own, as Faust's handler does: a rebalance clears the queue,
            # which cancels the waiting put, and that cancellation must end this delivery,
            # not the fetch loop (Faust's fetcher then restarts through a supervisor it does
            # not have: measured, the worker stopped).
            await asyncio.wait([asyncio.ensure_future(channel.put(event))])
        else:
            queue.put_nowait_enhanced(event, on_pressure_high=on_pressure_high,
                                      on_pressure_drop=on_pressure_drop)

    return on_message


def commit_outside_faust(consumer: Any, *topics: str) -> None:
    """Stop Faust's consumer from committing offsets of ``topics``: the worker's transactions
    commit them, and a periodic commit of an older acknowledged offset would move the
    group's offset back behind a committed transaction.

    Faust's offset-gap bookkeeping is switched off for them too. Every transaction marker in
    a topic written transactionally (the merchant-labels topic) is a gap in its offsets, which
    Faust adds to an interval tree that it rebuilds on each addition and trims only when it
    commits the topic itself. It never does here, so the tree grew by one interval per
    transaction: measured, 16 % of a worker's CPU after 80 s of the demo, growing with time.
    """
    from faust.transport.consumer import Consumer

    klass = cast(Any, Consumer)
    if not getattr(klass, "_fraudstream_commit_outside", False):
        should_commit = klass._should_commit
        add_gap = klass._add_gap

        def only_faust_topics(self: Any, tp: Any, offset: int) -> bool:
            if tp.topic in getattr(self, "_fraudstream_transactional_topics", ()):
                return False
            return bool(should_commit(self, tp, offset))

        async def gaps_of_faust_topics(self: Any, tp: Any, offset_from: int,
                                       offset_to: int) -> None:
            if tp.topic in getattr(self, "_fraudstream_transactional_topics", ()):
                return
            await add_gap(self, tp, offset_from, offset_to)

        klass._should_commit = only_faust_topics
        klass._add_gap = gaps_of_faust_topics
        klass._fraudstream_commit_outside = True
    consumer._fraudstream_transactional_topics = frozenset(topics)
    gaps = getattr(consumer, "_gap", {})
    for tp in [tp for tp in gaps if tp.topic in topics]:
        del gaps[tp]


class ConsumerOffsets:
    """The committed offsets Faust's consumer of ``app`` holds, by topic and partition (what
    ``workers.batch_protocol`` reads and advances)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def committed(self, topic: str, partition: int) -> int | None:
        from faust.types import TP

        return committed_offset(self.app.consumer, TP(topic, partition))

    def note_committed(self, topic: str, partition: int, offset: int) -> None:
        from faust.types import TP

        note_committed(self.app.consumer, TP(topic, partition), offset)


def note_committed(consumer: Any, tp: Any, offset: int) -> None:
    """Record that a transaction committed ``tp``'s offset (next to read): Faust's consumer
    then neither keeps the batch's acknowledgements nor commits them again, and the offset
    continuity check and the lag read the new offset."""
    committed = consumer._committed_offset
    current = committed.get(tp)
    if current is None or offset > current:
        committed[tp] = offset


def reset_committed(consumer: Any, tp: Any, offset: int) -> None:
    """Replace ``tp``'s committed offset as Faust's consumer knows it, even by a lower one:
    a start moved back to the partition's first record (the group's offset was past its end).
    Faust then commits its acknowledgements from there, and the lag is read from there."""
    consumer._committed_offset[tp] = offset


def after_each_seek(consumer: Any, check: Callable[[], Awaitable[None]]) -> None:
    """Await ``check`` every time Faust's ``consumer`` has sought its partitions to the group's
    committed offsets (at the end of each recovery, and when a fetch finds the flow stopped),
    before it fetches from there."""
    from faust.transport.consumer import Consumer

    klass = cast(Any, Consumer)
    if not getattr(klass, "_fraudstream_after_seek", False):
        perform_seek = klass.perform_seek

        async def perform_seek_then_check(self: Any) -> None:
            await perform_seek(self)
            then = getattr(self, "_fraudstream_seek_check", None)
            if then is not None:
                await then()

        klass.perform_seek = perform_seek_then_check
        klass._fraudstream_after_seek = True
    consumer._fraudstream_seek_check = check


def exact_recovery_targets(last_records: Any) -> None:
    """Make Faust's table recovery aim at each changelog partition's last committed record.

    Faust takes the end offset minus one as the offset recovery must reach. In a changelog
    written by transactions the last offset is a commit marker that no consumer ever
    receives, so recovery would wait forever (Faust works around it only in its own
    exactly-once mode, after two 5 s timeouts). ``last_records(ends)`` maps each changelog
    partition's end offset to the offset of its last committed record (-1: none).
    """
    from faust.tables.recovery import Recovery

    klass = cast(Any, Recovery)
    if getattr(klass, "_fraudstream_exact_targets", False):
        return
    build = klass._build_highwaters

    build_offsets = klass._build_offsets

    async def build_highwaters(self: Any, consumer: Any, tps: Any, destination: Any,
                               title: str) -> None:
        await build(self, consumer, tps, destination, title)
        ends = {tp: destination[tp] + 1 for tp in tps
                if destination.get(tp) is not None and destination[tp] >= 0}
        if not hasattr(self, "_fraudstream_ends"):
            self._fraudstream_ends = {}
        for tp in tps:
            self._fraudstream_ends.pop(tp, None)
        self._fraudstream_ends.update(ends)
        if ends:
            # Assigned one by one: ``destination`` is a Counter, whose update() adds.
            for tp, offset in (await last_records(ends)).items():
                destination[tp] = offset

    async def build_offsets_within_targets(self: Any, consumer: Any, tps: Any,
                                           destination: Any, title: str) -> None:
        # A local store that holds the changelog up to an offset inside the log but past the
        # last record still readable (records deleted or compacted away, a marker in
        # between) has nothing left to read: its offset is the target. (Faust would call it
        # inconsistent; a store ahead of the log's end is wiped before, workers.card_store.)
        await build_offsets(self, consumer, tps, destination, title)
        targets = self.active_highwaters if title == "active" else self.standby_highwaters
        ends = getattr(self, "_fraudstream_ends", {})
        for tp in tps:
            held, target, end = destination.get(tp), targets.get(tp), ends.get(tp)
            if None not in (held, target, end) and target < held < end:
                targets[tp] = held

    klass._build_highwaters = build_highwaters
    klass._build_offsets = build_offsets_within_targets
    klass._fraudstream_exact_targets = True


def recovery_stuck_past_targets(app: Any) -> dict[Any, tuple[int, int, int]]:
    """Changelog partitions whose recovery waits for an offset the consumer has already read
    past: (offset reached, target, consumer position) for each.

    With transactions a target can name a record that turned out aborted (or a marker) by the
    time the consumer read it: no event for it ever comes, and Faust, outside its own
    exactly-once mode, would wait forever. The caller decides when such a wait is over.
    """
    recovery = app.tables.recovery
    if not recovery.in_recovery or app.tables.changelog_queue.qsize():
        return {}
    consumer = app.consumer._thread._consumer
    if consumer is None:
        return {}
    assignment = consumer._subscription.subscription.assignment
    stuck = {}
    for tp, target in list(recovery.active_highwaters.items()):
        reached = recovery.active_offsets.get(tp)
        if target is None or reached is None or reached >= target:
            continue
        try:
            position = assignment.state_value(tp)._position
        except (KeyError, AttributeError):
            continue
        if position is not None and position > target:
            stuck[tp] = (reached, target, position)
    return stuck


def end_recovery_at(app: Any, tp: Any, offset: int) -> None:
    """Count ``tp``'s recovery as having reached ``offset`` (see recovery_stuck_past_targets);
    the recovery loop ends at its next check once every partition is there."""
    app.tables.recovery.active_offsets[tp] = offset


def table_applied_offset(app: Any, table: Any, partition: int = 0) -> int | None:
    """The offset of the last changelog record of ``table``'s ``partition`` that this worker's
    copy has applied (-1: none yet; None: one is being applied right now).

    For a table with ``recovery_buffer_size=1`` (the merchants table) Faust applies each
    changelog record as it reads it, during recovery and after it (a global table's changelog
    stays assigned), in offset order, and never one older than the last (it skips offsets at
    or below the one it holds). The offset is set just before the record is applied, so a
    non-empty buffer means the record is not in the table yet.
    """
    from faust.types import TP

    recovery = app.tables.recovery
    if recovery.buffers.get(table):
        return None
    tp = TP(table.changelog_topic.get_topic_name(), partition)
    offset = recovery.active_offsets.get(tp)
    return -1 if offset is None else int(offset)


def stop_was_asked(worker: Any) -> bool:
    """Whether ``worker`` (a mode/Faust ``Worker``) stops because a signal asked it to
    (SIGTERM, SIGINT), not because it failed: mode stops a worker the same way for both and
    stamps only the asked stop."""
    return bool(worker._signal_stop_time)
