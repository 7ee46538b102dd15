"""``python -m fraudstream.bench.transactions --compare offsets``: the same two partitions'
transactions with and without the consumed offsets, and the Kafka node's CPU per cycle."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from fraudstream.bench import transactions
from fraudstream.settings import Settings
from fraudstream.workers.fenced_outputs import Committed


class FakeOutputs:
    def __init__(self) -> None:
        self.opened: list[int] = []
        self.closed = False

    async def open(self, partitions: Any) -> None:
        self.opened = sorted(partitions)

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeOutputs, list[dict[int, int]]]:
    outputs, offsets_sent = FakeOutputs(), []

    async def commit_each(given: Any, records: Any, next_offsets: dict[int, int]) -> Committed:
        assert given is outputs
        assert sorted(records) == outputs.opened
        offsets_sent.append(dict(next_offsets))
        return Committed(partitions=set(records))

    monkeypatch.setattr(transactions, "fenced_outputs", lambda settings, name: outputs)
    monkeypatch.setattr(transactions, "commit_each", commit_each)
    return outputs, offsets_sent


@pytest.mark.parametrize("offsets", [True, False])
def test_each_cycle_commits_every_partition_with_or_without_its_offset(
        commits: tuple[FakeOutputs, list[dict[int, int]]], offsets: bool) -> None:
    outputs, offsets_sent = commits
    cpu = itertools.count(10.0, 0.5)  # the Kafka node used 0.5 s between the two reads
    measured = asyncio.run(transactions.cycles(
        Settings(), "t", offsets=offsets, count=4, gap_s=0, broker_cpu=lambda: next(cpu)))
    assert outputs.opened == list(transactions.PARTITIONS) and outputs.closed
    expected = [dict.fromkeys(transactions.PARTITIONS, n + 1) if offsets else {}
                for n in range(4)]
    assert offsets_sent == expected
    assert len(measured.took) == 4
    assert measured.broker_ms == pytest.approx(0.5 / 4 * 1000)


def test_a_failed_transaction_fails_the_measurement(
        monkeypatch: pytest.MonkeyPatch, commits: tuple[FakeOutputs, list[dict[int, int]]]
        ) -> None:
    outputs, _sent = commits

    async def failing(*_args: Any) -> Committed:
        return Committed(failure=RuntimeError("broker gone"))

    monkeypatch.setattr(transactions, "commit_each", failing)
    with pytest.raises(RuntimeError, match="broker gone"):
        asyncio.run(transactions.cycles(Settings(), "t", offsets=True, count=2, gap_s=0,
                                        broker_cpu=lambda: 1.0))
    assert outputs.closed


def test_no_kafka_node_means_no_cpu_figure(
        commits: tuple[FakeOutputs, list[dict[int, int]]]) -> None:
    measured = asyncio.run(transactions.cycles(Settings(), "t", offsets=False, count=2,
                                               gap_s=0, broker_cpu=lambda: None))
    assert measured.broker_ms is None


def test_the_waits_comparison_commits_one_partition_with_its_offset(
        commits: tuple[FakeOutputs, list[dict[int, int]]]) -> None:
    outputs, offsets_sent = commits
    asyncio.run(transactions.cycles(Settings(), "t", offsets=True, count=3, gap_s=0,
                                    broker_cpu=lambda: None, partitions=(0,)))
    assert outputs.opened == [0]
    assert offsets_sent == [{0: 1}, {0: 2}, {0: 3}]


def test_the_kafka_node_read_is_the_local_stacks_first_node(tmp_path: Any) -> None:
    # No stack under this state directory: no process, no figure (the report says so).
    read = transactions.kafka_node_cpu(Settings(state_dir=tmp_path))
    assert read() is None


class FakeTransactionalProducer:
    """Records each transaction: the partitions its records went to and the offsets sent."""

    def __init__(self) -> None:
        self.transactions: list[dict[str, Any]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def begin_transaction(self) -> None:
        self.transactions.append({"records": [], "offsets": None, "committed": False})

    def create_batch(self) -> Any:
        from aiokafka.producer.message_accumulator import BatchBuilder

        return BatchBuilder(1_000_000, 0, is_transactional=True)

    async def send_batch(self, batch: Any, topic: str, partition: int) -> Any:
        self.transactions[-1]["records"].append((topic, partition, batch.record_count()))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        from types import SimpleNamespace

        done.set_result(SimpleNamespace(topic=topic, partition=partition, offset=0))
        return done

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group: str) -> None:
        self.transactions[-1]["offsets"] = {tp.partition: o for tp, o in offsets.items()}

    async def commit_transaction(self) -> None:
        self.transactions[-1]["committed"] = True


def test_the_shared_cycle_commits_both_partitions_in_one_transaction(
        monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeTransactionalProducer()
    monkeypatch.setattr(transactions.kafka_clients, "aio_producer",
                        lambda settings, **options: producer)
    cpu = itertools.count(10.0, 0.3)
    measured = asyncio.run(transactions.shared_cycles(
        Settings(), "t", count=3, gap_s=0, broker_cpu=lambda: next(cpu)))
    assert producer.started and producer.stopped
    assert [t["offsets"] for t in producer.transactions] == [
        dict.fromkeys(transactions.PARTITIONS, n + 1) for n in range(3)]
    assert all(t["committed"] for t in producer.transactions)
    # Each transaction holds what the per-partition ones hold together: both partitions'
    # scores and card records.
    written = {(topic, partition) for topic, partition, _n in producer.transactions[0]["records"]}
    assert written == {(f"t-{name}", p) for name in ("scores", "cards")
                       for p in transactions.PARTITIONS}
    assert measured.broker_ms == pytest.approx(0.3 / 3 * 1000)
