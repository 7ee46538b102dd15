"""Whether a consumer group makes progress: committed offsets against the partitions' ends."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class PartitionProgress:
    committed: int
    end: int
    since: float

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


@dataclass
class GroupProgress:
    """Tracks, per partition of one topic, when the group's committed offset last moved."""

    bootstrap: str
    group: str
    topic: str
    partitions: dict[int, PartitionProgress] = field(default_factory=dict)
    _admin: Any = None
    _consumer: Any = None

    def start(self) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                       client_id="fraudstream-supervisor",
                                       request_timeout_ms=5000)
        self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap,
                                       client_id="fraudstream-supervisor",
                                       request_timeout_ms=5000, enable_auto_commit=False)

    def stop(self) -> None:
        for client in (self._admin, self._consumer):
            if client is not None:
                client.close()
        self._admin = self._consumer = None

    def refresh(self, now: float) -> dict[int, PartitionProgress]:
        """Read committed and end offsets; a partition's ``since`` resets when it moves."""
        from kafka import TopicPartition

        offsets = self._admin.list_group_offsets({self.group: None}).get(self.group, {})
        committed = {tp.partition: meta.offset for tp, meta in offsets.items()
                     if tp.topic == self.topic}
        parts = self._consumer.partitions_for_topic(self.topic) or set()
        ends = self._consumer.end_offsets([TopicPartition(self.topic, p) for p in parts])
        for tp, end in ends.items():
            done = max(committed.get(tp.partition, 0), 0)
            old = self.partitions.get(tp.partition)
            # The clock runs from the last commit, or from when a backlog appeared on a
            # partition that was caught up (an idle partition is not a stuck one).
            if old is None or old.committed != done or old.lag == 0:
                self.partitions[tp.partition] = PartitionProgress(done, end, now)
            else:
                old.end = end
        return self.partitions

    def stalled(self, partitions: list[int], now: float, timeout_s: float) -> list[int]:
        """Partitions with a backlog whose committed offset has not moved for ``timeout_s``."""
        out = []
        for p in partitions:
            state = self.partitions.get(p)
            if state is not None and state.lag > 0 and now - state.since > timeout_s:
                out.append(p)
        return out

    def reset(self, partitions: list[int], now: float) -> None:
        """A new owner gets a fresh grace period for these partitions."""
        for p in partitions:
            if p in self.partitions:
                self.partitions[p].since = now
