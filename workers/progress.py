"""Whether a consumer group makes progress: committed offsets against the partitions' ends.

The ends are read as the workers read (committed: a transaction still open upstream is not
a backlog yet), and a backlog that holds no record at all is none: a transactional producer
upstream ends each transaction with a marker that takes an offset, and the workers commit the
offset after the last record they processed, so one marker per partition stays after it for
good. Counted as a backlog, it made the supervisor fail an idle worker over every 20 s
(measured 2026-12-04 (y): two `no_progress` failovers in 45 s after 200 transactions from a
transactional producer, lag 1 on every partition).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fraudstream.monitoring.consumer_lag import StandingBacklogs

if TYPE_CHECKING:
    from fraudstream.settings import Settings

logger = logging.getLogger(__name__)

#: Commit gaps remembered per partition: "recent batch times".
RECENT_GAPS = 5
#: A partition without commits while its worker commits others waits this many times its
#: stall limit before it counts as stuck: under overload the consumer serves its partitions
#: one fetched chunk at a time (measured: 20 s without a commit on one partition of a worker
#: that kept committing its other one, at 600 tx/s on a 2-core machine, 2026-12-01).
STARVED_FACTOR = 6


def resumes_at(committed: int | None, first: int, end: int) -> int:
    """Where the group's reader of a partition goes on: the committed offset, or the
    partition's first record when the group has none (or a negative one) or it lies outside
    the log.

    Below the first record, retention deleted what it pointed at; past the end, the topic was
    created again while the group kept its offsets, or the log was truncated: the workers
    start from the first record in both cases (``auto.offset.reset`` earliest, and
    ``workers.app``), so the records from there on are the backlog. (Reading the end minus a
    committed offset past it as no backlog hid a worker that scored nothing.)
    """
    if committed is None or not first <= committed <= end:
        return first
    return committed


@dataclass
class PartitionProgress:
    committed: int
    end: int
    since: float
    #: When its committed offset last moved (or when it was first seen).
    moved: float = 0.0
    #: Seconds between the last commits seen while the partition had a backlog: how long a
    #: batch takes now (at least the workers' commit interval).
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_GAPS))
    #: The offsets from ``committed`` to ``end`` were read and hold no record a worker reads
    #: (transaction markers, aborted records).
    no_records: bool = False

    @property
    def lag(self) -> int:
        return 0 if self.no_records else max(self.end - self.committed, 0)


@dataclass
class GroupProgress:
    """Tracks, per partition of one topic, when the group's committed offset last moved."""

    #: The settings (they carry every connection option), or a bootstrap string.
    target: Settings | str
    group: str
    topic: str
    partitions: dict[int, PartitionProgress] = field(default_factory=dict)
    _admin: Any = None
    _consumer: Any = None
    _backlogs: StandingBacklogs = field(init=False)

    def __post_init__(self) -> None:
        self._backlogs = StandingBacklogs(
            lambda tp, start, end: self._read_backlog(tp, start, end))

    def start(self) -> None:
        from fraudstream import kafka_clients

        self._admin = kafka_clients.admin(self.target, client_id="fraudstream-supervisor",
                                          request_timeout_ms=5000)
        # Read committed, as the workers: end offsets are then the last stable offsets.
        self._consumer = kafka_clients.sync_consumer(self.target,
                                                     client_id="fraudstream-supervisor",
                                                     request_timeout_ms=5000,
                                                     enable_auto_commit=False,
                                                     isolation_level="read_committed")

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
        tps = [TopicPartition(self.topic, p) for p in parts]
        ends = self._consumer.end_offsets(tps)
        firsts = self._consumer.beginning_offsets(tps)
        for tp, end in ends.items():
            done = resumes_at(committed.get(tp.partition), firsts.get(tp, 0), end)
            old = self.partitions.get(tp.partition)
            if old is None:
                self.partitions[tp.partition] = PartitionProgress(done, end, now, now)
                continue
            # The clock runs from the last commit, or from when a backlog appeared on a
            # partition that was caught up (an idle partition is not a stuck one).
            if old.committed != done and old.lag > 0:
                old.gaps.append(now - old.since)
            if old.committed != done:
                old.moved = now
            if old.committed != done or old.lag == 0:
                old.since = now
            # Read only once a backlog stands still: a moving one is made of records.
            still = old.committed == done
            old.committed, old.end = done, end
            old.no_records = still and end > done and not self._holds_records(tp, done, end)
        return self.partitions

    def _holds_records(self, tp: Any, start: int, end: int) -> bool:
        known = self._backlogs.known(tp.partition, start, end)
        return asyncio.run(self._backlogs.holds(tp, start, end)) if known is None else known

    async def _read_backlog(self, tp: Any, start: int, end: int) -> bool:
        from fraudstream.workers.changelog_tail import holds_records

        return await holds_records(self.target, tp, start, end)

    @property
    def total_lag(self) -> int:
        """Records of the topic not yet committed by the group, at the last refresh."""
        return sum(p.lag for p in list(self.partitions.values()))  # read by another thread

    def stall_timeout(self, partition: int, timeout_s: float, batches: int) -> float:
        """The longer of ``timeout_s`` and ``batches`` of the partition's recent commit gaps."""
        state = self.partitions.get(partition)
        recent = max(state.gaps) if state is not None and state.gaps else 0.0
        return max(timeout_s, batches * recent)

    def stalled(self, partitions: list[int], now: float, timeout_s: float,
                not_before: float | None = None, batches: int = 0) -> list[int]:
        """Partitions of one worker with a backlog whose committed offset has not moved for
        too long.

        Too long is ``stall_timeout``, counted from the last commit or from ``not_before``
        (when their owner got ready), whichever is later; ``STARVED_FACTOR`` times that
        while another of ``partitions`` committed within ``timeout_s``: a worker that commits
        is overloaded, not stuck (``starved`` names the partitions this spares).
        """
        factor = STARVED_FACTOR if self._working(partitions, now, timeout_s) else 1
        return [p for p in partitions
                if (waited := self._waited(p, now, not_before)) is not None
                and waited > factor * self.stall_timeout(p, timeout_s, batches)]

    def starved(self, partitions: list[int], now: float, timeout_s: float,
                not_before: float | None = None, batches: int = 0) -> list[int]:
        """Partitions past their stall limit that ``stalled`` spares because their worker
        commits its other partitions."""
        if not self._working(partitions, now, timeout_s):
            return []
        return [p for p in partitions
                if (waited := self._waited(p, now, not_before)) is not None
                and self.stall_timeout(p, timeout_s, batches) < waited
                <= STARVED_FACTOR * self.stall_timeout(p, timeout_s, batches)]

    def _working(self, partitions: list[int], now: float, timeout_s: float) -> bool:
        """Whether any of ``partitions`` committed within the last ``timeout_s``."""
        return any(p in self.partitions and now - self.partitions[p].moved <= timeout_s
                   for p in partitions)

    def _waited(self, partition: int, now: float, not_before: float | None) -> float | None:
        """Seconds ``partition`` has had a backlog without a commit (None: no backlog)."""
        state = self.partitions.get(partition)
        if state is None or state.lag == 0:
            return None
        since = max(state.since, not_before) if not_before is not None else state.since
        return now - since

    def moved_since(self, partitions: list[int], at: float) -> bool:
        """True when every one of ``partitions`` is caught up or committed after ``at``."""
        return all(p in self.partitions and (self.partitions[p].lag == 0
                                             or self.partitions[p].since > at)
                   for p in partitions)
