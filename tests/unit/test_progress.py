"""The supervisor's progress rule: a backlog without commits for too long means stuck."""

from __future__ import annotations

from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from workers.progress import GroupProgress


class FakeKafka:
    """Committed and end offsets the test sets (unit test: no broker)."""

    def __init__(self) -> None:
        self.committed: dict[int, int] = {}
        self.ends: dict[int, int] = {}

    def list_group_offsets(self, spec: dict[str, Any]) -> dict[str, Any]:
        (group,) = spec
        return {group: {TopicPartition("tx", p): OffsetAndMetadata(o, "", -1)
                        for p, o in self.committed.items()}}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(self.ends)

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp.partition] for tp in tps}


def progress(kafka: FakeKafka) -> GroupProgress:
    g = GroupProgress("unused:9092", "group", "tx")
    g._admin = g._consumer = kafka
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
