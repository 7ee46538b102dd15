"""FencedOutputs' protocol with fake producers: what is sent, committed, aborted, reopened."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError, ProducerFenced

from fraudstream.workers.fenced_outputs import FencedError, FencedOutputs, transactional_id


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: None) -> object:
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)

    def close(self) -> None:
        """Sent whole (the sink closes each batch before sending it)."""


class FakeProducer:
    """Records the calls of one transactional producer; ``fail`` makes sends fail."""

    def __init__(self, tid: str, log: list[tuple[str, Any]], fail: BaseException | None) -> None:
        self.tid, self.log, self.fail = tid, log, fail

    async def start(self) -> None:
        self.log.append(("start", self.tid))

    async def stop(self) -> None:
        self.log.append(("stop", self.tid))

    async def begin_transaction(self) -> None:
        self.log.append(("begin", self.tid))

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> Any:
        if self.fail is not None:
            raise self.fail
        self.log.append(("send", (topic, partition, batch.records)))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def send_offsets_to_transaction(self, offsets: dict, group_id: str) -> None:
        self.log.append(("offsets", ({(tp.topic, tp.partition): o
                                      for tp, o in offsets.items()}, group_id)))

    async def commit_transaction(self) -> None:
        self.log.append(("commit", self.tid))

    async def abort_transaction(self) -> None:
        self.log.append(("abort", self.tid))


def make(log: list[tuple[str, Any]], fail: list[BaseException | None]) -> FencedOutputs:
    return FencedOutputs(app_id="app", input_topic="tx", group_id="group",
                         producer_factory=lambda tid: FakeProducer(tid, log, fail.pop(0)))


def test_one_transaction_holds_the_outputs_and_the_consumed_offset() -> None:
    log: list[tuple[str, Any]] = []
    out = make(log, [None])

    async def run() -> None:
        await out.open([3])
        await out.commit(3, [("scores", b"k", b"s", 3), ("cards-changelog", b"k", b"c", 3)],
                         next_offset=42)

    asyncio.run(run())
    tid = transactional_id("app", "tx", 3)
    assert tid == "app-tx-3"
    assert log == [("start", tid), ("begin", tid),
                   ("send", ("scores", 3, [(b"k", b"s")])),
                   ("send", ("cards-changelog", 3, [(b"k", b"c")])),
                   ("offsets", ({("tx", 3): 42}, "group")), ("commit", tid)]


def test_a_fenced_producer_is_released_and_reported_not_aborted() -> None:
    log: list[tuple[str, Any]] = []
    out = make(log, [ProducerFenced()])

    async def run() -> None:
        await out.open([0])
        with pytest.raises(FencedError, match="new owner"):
            await out.commit(0, [("scores", b"k", b"s", 0)], next_offset=1)
        with pytest.raises(FencedError, match="not open here"):
            await out.commit(0, [("scores", b"k", b"s", 0)], next_offset=1)

    asyncio.run(run())
    assert [step for step, _ in log] == ["start", "begin", "stop"]
    assert out.partitions == set()


def test_any_other_failure_aborts_and_starts_a_fresh_producer_for_the_partition() -> None:
    log: list[tuple[str, Any]] = []
    out = make(log, [MessageSizeTooLargeError(), None])

    async def run() -> None:
        await out.open([1])
        with pytest.raises(MessageSizeTooLargeError):
            await out.commit(1, [("scores", b"k", b"s", 1)], next_offset=1)
        await out.commit(1, [("scores", b"k", b"t", 1)], next_offset=2)

    asyncio.run(run())
    assert [step for step, _ in log] == ["start", "begin", "abort", "stop", "start", "begin",
                                         "send", "offsets", "commit"]


class SlowAckProducer(FakeProducer):
    """Acknowledges each batch a loop turn after it was sent, or fails it then (``nack``): how
    aiokafka reports a produce error, through the batch's future, not from ``send_batch``."""

    nack: BaseException | None = None

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> Any:
        self.log.append(("send", (topic, partition, batch.records)))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def acknowledge() -> None:
            self.log.append(("ack" if self.nack is None else "nack", topic))
            if self.nack is None:
                fut.set_result(None)
            else:
                fut.set_exception(self.nack)

        asyncio.get_running_loop().call_soon(acknowledge)
        return fut


def slow_acks(log: list[tuple[str, Any]], nack: BaseException | None) -> FencedOutputs:
    def factory(tid: str) -> SlowAckProducer:
        producer = SlowAckProducer(tid, log, None)
        producer.nack = nack
        return producer

    return FencedOutputs(app_id="app", input_topic="tx", group_id="group",
                         producer_factory=factory)


def test_the_commit_waits_for_the_records_acknowledgement() -> None:
    log: list[tuple[str, Any]] = []
    out = slow_acks(log, None)

    async def run() -> None:
        await out.open([2])
        await out.commit(2, [("scores", b"k", b"s", 2)], next_offset=8)

    asyncio.run(run())
    assert [step for step, _ in log] == ["start", "begin", "send", "ack", "offsets", "commit"]


def test_a_produce_that_fails_after_it_was_sent_aborts_the_transaction() -> None:
    log: list[tuple[str, Any]] = []
    out = slow_acks(log, MessageSizeTooLargeError())

    async def run() -> None:
        await out.open([2])
        with pytest.raises(MessageSizeTooLargeError):
            await out.commit(2, [("scores", b"k", b"s", 2)], next_offset=8)

    asyncio.run(run())
    # aiokafka itself would commit a transaction one of whose produce requests failed (it
    # does not make the transaction abortable): the offset must not go, the commit must not.
    assert [step for step, _ in log] == ["start", "begin", "send", "nack", "abort", "stop",
                                         "start"]


class FakeOutputs:
    """FencedOutputs as the batch sink sees it: per partition, commit or fail."""

    def __init__(self, outcome: dict[int, BaseException]) -> None:
        self.outcome = outcome
        self.commits: list[tuple[int, list[Any], int | None]] = []

    async def commit(self, partition: int, records: list[Any], next_offset: int | None
                     ) -> dict[tuple[str, int], int]:
        if partition in self.outcome:
            raise self.outcome[partition]
        self.commits.append((partition, list(records), next_offset))
        return {(topic, p): 100 + i for i, (topic, _k, _v, p) in enumerate(records)}


def sink_with(outcome: dict[int, BaseException]) -> tuple[Any, FakeOutputs]:
    from fraudstream.workers.fenced_outputs import FencedBatchSink

    fake = FakeOutputs(outcome)
    return FencedBatchSink(fake), fake  # type: ignore[arg-type]


def test_a_flush_commits_each_input_partition_with_its_outputs_and_offset() -> None:
    sink, fake = sink_with({})
    sink.add("scores", b"a", b"1", 0)
    sink.add("cards", b"a", b"c", 0)
    sink.add("scores", b"b", b"2", 2)
    sink.mark_consumed(0, 5)
    sink.mark_consumed(0, 7)
    sink.mark_consumed(1, 3)  # nothing written for it: the offset still commits
    sink.mark_consumed(2, 9)
    written = asyncio.run(sink.flush())
    assert sorted((p, [r[0] for r in recs], o) for p, recs, o in fake.commits) == [
        (0, ["scores", "cards"], 7), (1, [], 3), (2, ["scores"], 9)]
    assert written == {("scores", 0): 100, ("cards", 0): 101, ("scores", 2): 100}
    assert sink.fenced == frozenset() and sink.committed == written
    asyncio.run(sink.flush())  # emptied: nothing committed twice
    assert len(fake.commits) == 3


def test_a_fenced_partition_is_dropped_and_reported_the_others_commit() -> None:
    sink, fake = sink_with({1: FencedError("partition 1 has a new owner")})
    sink.add("scores", b"a", b"1", 0)
    sink.add("scores", b"b", b"2", 1)
    sink.mark_consumed(0, 1)
    sink.mark_consumed(1, 1)
    written = asyncio.run(sink.flush())
    assert written == {("scores", 0): 100}
    assert sink.fenced == frozenset({1})
    assert [p for p, _r, _o in fake.commits] == [0]


def test_another_failure_raises_after_the_other_partitions_committed() -> None:
    sink, _fake = sink_with({1: MessageSizeTooLargeError()})
    sink.add("cards", b"a", b"1", 0)
    sink.add("cards", b"b", b"2", 1)
    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(sink.flush())
    # What did commit is known, so its state can be kept (ChangelogTable.apply).
    assert sink.committed == {("cards", 0): 100}
    assert sink.fenced == frozenset()


def test_an_output_without_its_partition_is_refused() -> None:
    sink, _fake = sink_with({})
    with pytest.raises(ValueError, match="needs its partition"):
        sink.add("scores", b"a", b"1")
