"""The supervisor's progress rule: a backlog without commits for too long means stuck."""

from __future__ import annotations

import asyncio
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from fraudstream.workers.progress import GroupProgress, resumes_at


class FakeKafka:
    """Committed and end offsets the test sets (unit test: no broker)."""

    def __init__(self, topic: str = "tx") -> None:
        self.topic = topic
        self.committed: dict[int, int] = {}
        self.ends: dict[int, int] = {}
        self.firsts: dict[int, int] = {}
        # A read-committed reader: ``data`` holds, per partition, the offsets that hold a
        # record (the others: transaction markers, aborted records); a partition not in it
        # holds one at every offset.
        self.data: dict[int, set[int]] = {}
        self.reads = 0

    def close(self) -> None:
        pass

    def list_group_offsets(self, spec: dict[str, Any]) -> dict[str, Any]:
        (group,) = spec
        return {group: {TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1)
                        for p, o in self.committed.items()}}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(self.ends)

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp.partition] for tp in tps}

    def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.firsts.get(tp.partition, 0) for tp in tps}

    async def holds(self, tp: TopicPartition, start: int, end: int) -> bool:
        """What ``workers.changelog_tail.holds_records`` finds: whether an offset from
        ``start`` to ``end - 1`` holds a record."""
        self.reads += 1
        held = self.data.get(tp.partition)
        return any(start <= o < end for o in (range(start, end) if held is None else held))


    def install(self, g: GroupProgress) -> None:
        """Make ``g`` read its offsets and backlogs here, never from a broker."""
        g._admin = g._consumer = self
        g._read_backlog = self.holds  # type: ignore[method-assign]


def progress(kafka: FakeKafka) -> GroupProgress:
    g = GroupProgress("unused:9092", "group", "tx")
    kafka.install(g)
    return g


def test_an_idle_partition_that_gets_a_backlog_is_not_stuck_at_once() -> None:
    kafka = FakeKafka()
    kafka.ends = {0: 0}
    g = progress(kafka)
    g.refresh(0.0)
    kafka.ends = {0: 500}  # load starts long after the last (absent) commit
    g.refresh(100.0)
    assert g.stalled([0], 100.0, 20.0) == []
    assert g.stalled([0], 121.0, 20.0) == [0]


def test_commits_reset_the_clock_and_a_caught_up_partition_is_never_stalled() -> None:
    kafka = FakeKafka()
    kafka.ends, kafka.committed = {0: 100, 1: 50}, {0: 10, 1: 50}
    g = progress(kafka)
    g.refresh(0.0)
    kafka.committed = {0: 60, 1: 50}
    g.refresh(15.0)
    assert g.stalled([0, 1], 30.0, 20.0) == []
    assert g.stalled([0, 1], 40.0, 20.0) == [0]


def test_the_clock_starts_at_readiness_when_that_is_later() -> None:
    kafka = FakeKafka()
    kafka.ends, kafka.committed = {0: 1000}, {0: 10}
    g = progress(kafka)
    g.refresh(0.0)  # the failover: the old owner's last commit was here
    g.refresh(26.0)  # the replacement restored its tables for 25 s, ready at 26 s
    assert g.stalled([0], 27.0, 20.0) == [0]  # what the old rule did: killed 1 s after ready
    assert g.stalled([0], 27.0, 20.0, not_before=26.0) == []
    assert g.stalled([0], 46.5, 20.0, not_before=26.0) == [0]


def test_slow_batches_stretch_the_stall_limit() -> None:
    kafka = FakeKafka()
    kafka.ends, kafka.committed = {0: 100_000}, {0: 0}
    g = progress(kafka)
    g.refresh(0.0)
    for step in range(1, 4):  # under load a commit comes every 15 s (one big batch each)
        kafka.committed = {0: 2000 * step}
        g.refresh(15.0 * step)
    assert g.stall_timeout(0, 20.0, batches=4) == 60.0  # 4 batches of 15 s, not 20 s
    assert g.stalled([0], 45.0 + 59.0, 20.0, batches=4) == []
    assert g.stalled([0], 45.0 + 61.0, 20.0, batches=4) == [0]
    assert g.total_lag == 100_000 - 6000


def test_idle_time_is_not_counted_as_a_batch() -> None:
    kafka = FakeKafka()
    kafka.ends, kafka.committed = {0: 50}, {0: 50}
    g = progress(kafka)
    g.refresh(0.0)
    kafka.ends = {0: 60}
    g.refresh(500.0)  # idle for 500 s, then a backlog
    kafka.committed = {0: 60}
    g.refresh(502.0)
    assert list(g.partitions[0].gaps) == [2.0]


def test_moved_since_needs_every_partition_caught_up_or_committing() -> None:
    kafka = FakeKafka()
    kafka.ends, kafka.committed = {0: 100, 1: 100}, {0: 10, 1: 100}
    g = progress(kafka)
    g.refresh(0.0)
    assert not g.moved_since([0, 1], 5.0)
    kafka.committed = {0: 20, 1: 100}
    g.refresh(10.0)
    assert g.moved_since([0, 1], 5.0)


def test_a_partition_waiting_while_its_worker_commits_another_is_starved_not_stalled() -> None:
    # Measured: under overload a worker serves its partitions one fetched chunk at a time,
    # and one of them went 20 s without a commit while the other kept committing.
    kafka = FakeKafka()
    kafka.ends, kafka.committed = {0: 50_000, 1: 50_000}, {0: 0, 1: 0}
    g = progress(kafka)
    g.refresh(0.0)
    for t in range(5, 200, 5):  # partition 1 commits every 5 s, partition 0 never
        kafka.committed = {0: 0, 1: 10 * t}
        g.refresh(float(t))
        if t <= 20:
            assert g.stalled([0, 1], float(t), 20.0) == []
            assert g.starved([0, 1], float(t), 20.0) == []
        elif t <= 120:
            assert g.stalled([0, 1], float(t), 20.0) == [], t
            assert g.starved([0, 1], float(t), 20.0) == [0], t
        else:  # six times the limit: stuck even though its worker commits
            assert g.stalled([0, 1], float(t), 20.0) == [0], t
            assert g.starved([0, 1], float(t), 20.0) == [], t


def test_a_worker_whose_partitions_all_stopped_committing_is_stalled_at_the_limit() -> None:
    kafka = FakeKafka()
    kafka.ends, kafka.committed = {0: 50_000, 1: 50_000}, {0: 0, 1: 0}
    g = progress(kafka)
    g.refresh(0.0)
    kafka.committed = {0: 100, 1: 100}
    g.refresh(5.0)
    assert g.stalled([0, 1], 25.0, 20.0) == []
    assert g.stalled([0, 1], 26.0, 20.0) == [0, 1]
    assert g.starved([0, 1], 26.0, 20.0) == []


def test_a_committed_offset_past_the_end_is_a_backlog_from_the_first_record() -> None:
    # Measured 2026-12-03: topics created again kept the group's offsets (about 20,900 per
    # partition); end minus committed read as no backlog while nothing was scored.
    kafka = FakeKafka()
    kafka.ends, kafka.committed = {0: 4000}, {0: 20_900}
    g = progress(kafka)
    g.refresh(0.0)
    assert g.total_lag == 4000
    g.refresh(25.0)
    assert g.stalled([0], 25.0, 20.0) == [0]  # nothing committed since: stuck, not idle
    kafka.committed = {0: 150}  # the worker started from the first record and committed
    g.refresh(26.0)
    assert g.total_lag == 3850
    assert g.stalled([0], 27.0, 20.0) == []


def test_offsets_outside_the_log_resume_at_its_first_record() -> None:
    assert resumes_at(None, 0, 100) == 0  # the group never committed
    assert resumes_at(-1, 0, 100) == 0  # what Kafka answers for no offset
    assert resumes_at(30, 120, 500) == 120  # retention deleted what it pointed at
    assert resumes_at(900, 120, 500) == 120  # past the end
    assert resumes_at(500, 120, 500) == 500  # caught up
    assert resumes_at(120, 120, 500) == 120


def test_a_log_start_moved_by_retention_is_not_counted_as_backlog() -> None:
    kafka = FakeKafka()
    kafka.ends, kafka.firsts = {0: 10_000}, {0: 9_000}  # the group never committed
    g = progress(kafka)
    g.refresh(0.0)
    assert g.total_lag == 1000


def test_a_backlog_of_transaction_markers_only_is_no_backlog() -> None:
    # Measured 2026-12-04 (y): after a transactional producer upstream, each partition ends
    # with a marker past the workers' committed offset; the supervisor failed an idle worker
    # over every 20 s (lag 1 on every partition).
    kafka = FakeKafka()
    kafka.ends, kafka.committed, kafka.data = {0: 101}, {0: 100}, {0: set()}
    g = progress(kafka)
    g.refresh(0.0)
    g.refresh(5.0)
    assert g.total_lag == 0
    for now in (30.0, 60.0, 90.0):
        g.refresh(now)
        assert g.stalled([0], now, 20.0) == []
    assert kafka.reads == 1, "read once per standing backlog"


def test_a_standing_backlog_already_read_needs_no_event_loop(monkeypatch: Any) -> None:
    # The supervisor refreshes every second: one event loop per idle partition behind a
    # marker, every second, for an answer it already has.
    kafka = FakeKafka()
    kafka.ends, kafka.committed, kafka.data = {0: 101, 1: 101}, {0: 100, 1: 100}, {0: set()}
    g = progress(kafka)
    loops = []
    run = asyncio.run

    def counted(coro: Any) -> Any:
        loops.append(coro)
        return run(coro)

    monkeypatch.setattr(asyncio, "run", counted)
    for now in (0.0, 5.0, 10.0, 15.0):
        g.refresh(now)
    assert len(loops) == 2 and kafka.reads == 2  # each partition's backlog once
    assert g.partitions[0].no_records and not g.partitions[1].no_records


def test_a_standing_backlog_that_holds_a_record_is_still_stalled() -> None:
    kafka = FakeKafka()
    kafka.ends, kafka.committed, kafka.data = {0: 102}, {0: 100}, {0: {100}}
    g = progress(kafka)
    g.refresh(0.0)
    g.refresh(5.0)
    assert g.total_lag == 2
    g.refresh(21.0)
    assert g.stalled([0], 21.0, 20.0) == [0]


def test_a_moving_backlog_is_not_read() -> None:
    kafka = FakeKafka()
    kafka.ends, kafka.committed = {0: 1000}, {0: 0}
    g = progress(kafka)
    for i in range(1, 5):
        kafka.committed = {0: 100 * i}
        g.refresh(float(i))
    assert kafka.reads == 0 and g.total_lag == 600


def test_a_backlog_that_cannot_be_read_counts_as_records() -> None:
    kafka = FakeKafka()
    kafka.ends, kafka.committed = {0: 101}, {0: 100}
    g = progress(kafka)

    async def unreachable(tp: TopicPartition, start: int, end: int) -> bool:
        raise TimeoutError("no broker answered")

    g._read_backlog = unreachable  # type: ignore[method-assign]
    g.refresh(0.0)
    g.refresh(5.0)
    assert g.total_lag == 1
    g.refresh(21.0)
    assert g.stalled([0], 21.0, 20.0) == [0]
