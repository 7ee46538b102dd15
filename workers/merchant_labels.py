"""The label path, exactly once: ``labels`` -> ``{app}-merchant-labels`` -> the merchants table.

A label names a card (its record key) and a merchant; merchant state is kept per merchant in
a global table every worker reads. Two hops get it there:

1. **Route** (agent ``route-labels``): each label goes to its merchant's partition of the
   internal merchant-labels topic (Kafka's default partitioner on the merchant id), so that one
   owner applies all labels of one merchant. A batch's labels for one partition travel in one
   record (``labels_record``: ``[merchant, ts, is_fraud]`` triples, at most
   ``LABELS_PER_RECORD``): one record per label cost the second hop a Faust event each
   (py-spy at 1,000 labels a second: Faust's fetch loop fell from 12.2-13.9 % of a worker's samples
   to 10.7-11.5 % with this). A record of the first form (one label, keyed by its merchant,
   ``[ts, is_fraud]``) is still read.
2. **Apply** (agent ``apply-labels``): the owner of a merchant-labels partition adds each label
   to its merchant's state and writes the state to the merchants changelog.

Under ``exactly_once`` each hop is fenced like the transactions path (``workers.fenced_outputs``):
one transactional producer per input partition, whose id names the partition, and one
transaction per batch and partition holding that partition's outputs and its consumed offset.
Why every label is then counted exactly once in the committed merchants changelog:

- Route: a labels partition's merchant-labels records commit atomically with its offset, so
  each label is routed once by the committed history of that partition's transactional id;
  opening the id (every assignment) aborts a predecessor's open transaction and fences its
  later ones, so a crashed or frozen predecessor adds nothing. Readers read committed.
- Apply: a merchant's key lands on one merchant-labels partition P, so only transactions of
  P's id write the merchant, and each commits P's offset with the states it wrote. They are
  serial (a new holder starts only after the fence ended the old one's transaction), so the
  merchant's committed states form one chain, provided each transaction builds on the last
  committed state. It does: (a) after its fence the new holder finds the changelog's last
  committed record and reads, straight from Kafka, every committed record after the last one
  its copy of the table has applied (``table_applied_offset``), keeping them beside the copy:
  every earlier state of P's merchants is then at hand, and no other writer of them is left
  (it does not wait for the copy itself, which Faust feeds from the fetch loop that a full
  agent buffer stops); (b) from then on it builds on the state it wrote itself (kept per
  merchant until its copy has applied that write), never on the table, whose copy can still
  hold an older echo of its own write. A state the transaction did not commit is never kept.
- Each state also names the last merchant-labels (partition, offset) applied to it, and a
  record at or below it is skipped for that merchant (all of the record's labels of the
  merchant are applied in the same transaction, or none): a label delivered again within one
  ownership (a stale fetch after a rebalance) is not counted twice either. Hop 1 drops such
  labels through the offset continuity check of the transactions path
  (``workers.continuity``), which also reads in labels the consumer skipped.

What the argument assumes: the merchant-labels topic keeps its partition count (a merchant
never moves); Faust applies the merchants changelog in offset order, one record at a time
(``recovery_buffer_size=1``), never going back (``workers.faust_bridge``); and the changelog's
last committed record is found (``workers.changelog_tail``; when the search runs out of time it
aims at the end itself, and the read then covers every committed record anyway).

Under ``at_least_once`` the worker keeps the plain path (``KafkaBatchSink``, Faust's table
writes and offset commits): labels in flight at a crash are counted again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from fraudstream.features import MerchantState
from fraudstream.kept_bytes import dumps_kept
from fraudstream.workers.fenced_outputs import Committed, FencedOutputs, OutputRecord, commit_each
from fraudstream.workers.merchant_states import DecodedTable, as_is
from fraudstream.workers.output import key_partition
from fraudstream.workers.processor import RawRecord
from fraudstream.workers.time_slices import SLICE_S, Slices

logger = logging.getLogger(__name__)

#: Seconds between two looks at whether the table's copy is between two records.
SETTLE_POLL_S = 0.02
#: Longest wait for the table's copy to finish the record it is applying.
SETTLE_WARN_S = 10.0

#: Reads the committed changelog records with ``start <= offset <= stop``: (key, value, offset).
ChangelogRange = Callable[[int, int], Awaitable[list[tuple[bytes | None, bytes | None, int]]]]
#: Labels in one merchant-labels record at most: a record of 1,000 labels with ids of the
#: longest allowed length stays well below Kafka's default 1 MB message limit.
LABELS_PER_RECORD = 1000
#: One label as hop 2 applies it: merchant key, transaction time (unix s), is_fraud (0 or 1).
Label = tuple[bytes, int, int]
#: Told of each merchant state a committed transaction wrote: key, stored value, state.
OnWritten = Callable[[bytes, bytes, MerchantState], None]


@dataclass
class MerchantRecord:
    """A merchant's state plus the last merchant-labels record applied to it.

    The wire form is ``MerchantState``'s with one more field, ``"o": [partition, offset]``,
    which ``MerchantState.from_wire`` ignores: features (offline and online) do not change.
    A state written before (no ``"o"``) has applied nothing that could come again.
    """

    state: MerchantState = field(default_factory=MerchantState)
    #: (merchant-labels partition, offset) of the last label applied; None: unknown.
    applied: tuple[int, int] | None = None

    @classmethod
    def from_wire(cls, wire: Any) -> MerchantRecord:
        applied = None
        if isinstance(wire, dict) and isinstance(wire.get("o"), list) and len(wire["o"]) == 2:
            applied = (int(wire["o"][0]), int(wire["o"][1]))
        return cls(MerchantState.from_wire(wire), applied)

    def copy(self) -> MerchantRecord:
        return MerchantRecord(self.state.copy(), self.applied)

    def to_wire(self) -> dict[str, Any]:
        wire = self.state.to_wire()
        if self.applied is not None:
            wire["o"] = list(self.applied)
        return wire

    def seen(self, partition: int, offset: int) -> bool:
        """Whether the label at (partition, offset) is already in the state."""
        return (self.applied is not None and self.applied[0] == partition
                and offset <= self.applied[1])

    def add(self, partition: int, offset: int, labels: Iterable[tuple[int, int]]) -> None:
        """Apply this merchant's labels ((ts, is_fraud) pairs) of the merchant-labels record at
        (partition, offset)."""
        observe = self.state.observe_label
        for ts, is_fraud in labels:
            observe(int(ts), bool(is_fraud))
        self.applied = (partition, offset)

    def observe(self, partition: int, offset: int, value: bytes | None) -> None:
        """Apply one label's compact form (``[ts, is_fraud]``, ``merchant_label``) read at
        (partition, offset)."""
        ts, is_fraud = orjson.loads(value or b"[0, 0]")
        self.add(partition, offset, [(ts, is_fraud)])


def parse_label(raw: bytes | None, now_s: float,
                max_skew_s: float) -> tuple[str, int, int] | None:
    """(merchant id, transaction time, is_fraud) of a label record, or None when it is
    malformed.

    The same identifier and clock rules as transactions: an unprintable id would reach logs,
    and a date beyond the clock skew would prune the merchant's history.
    """
    from fraudstream.workers.validation import clock_problem, identifier_problem, parse_rfc3339

    try:
        body = orjson.loads(raw or b"")
        merchant = body["merchant_id"]
        ts = parse_rfc3339(body["timestamp"])
        is_fraud = int(body["is_fraud"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError):
        return None
    if ts is None or is_fraud not in (0, 1) or identifier_problem("merchant_id", merchant):
        return None
    for name in ("card_id", "transaction_id"):
        if name in body and identifier_problem(name, body[name]) is not None:
            return None
    if clock_problem(ts, body["timestamp"], now_s, max_skew_s) is not None:
        return None
    return merchant, ts, is_fraud


def merchant_label(raw: bytes | None, now_s: float,
                   max_skew_s: float) -> tuple[bytes, bytes] | None:
    """(merchant key, compact [ts, is_fraud]) of a label record, or None when it is malformed
    (``parse_label``): one label on its own, as the benchmark's loops apply it."""
    label = parse_label(raw, now_s, max_skew_s)
    if label is None:
        return None
    merchant, ts, is_fraud = label
    return merchant.encode(), orjson.dumps([ts, is_fraud])


def labels_record(labels: Sequence[tuple[str, int, int]]) -> bytes:
    """The value of one merchant-labels record: ``[merchant, ts, is_fraud]`` triples."""
    return orjson.dumps(labels)


def labels_in(key: bytes | None, value: bytes | None) -> list[Label] | None:
    """The labels of one merchant-labels record (``labels_record``, or the first form: one
    label ``[ts, is_fraud]`` keyed by its merchant), or None when it is in neither form."""
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, list):
        return None
    if len(body) == 2 and all(type(x) is int for x in body):
        return [(key, body[0], body[1])] if key and body[1] in (0, 1) else None
    labels = []
    for item in body:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                and item[0] and type(item[1]) is int and item[2] in (0, 1)):
            return None
        labels.append((item[0].encode(), item[1], int(item[2])))
    return labels


@dataclass
class Routed:
    """One batch of labels routed: outputs and consumed offsets per labels partition."""

    records: dict[int, list[OutputRecord]] = field(default_factory=lambda: defaultdict(list))
    next_offsets: dict[int, int] = field(default_factory=dict)
    rejected: int = 0


def route(batch: Sequence[RawRecord], topic: str, partitions: int, now_s: float,
          max_skew_s: float) -> Routed:
    """The valid labels of ``batch`` as merchant-labels records, grouped by the labels
    partition they came from: per merchant-labels partition (the merchant's under Kafka's
    default partitioner, as an unfenced producer would pick) one record of up to
    ``LABELS_PER_RECORD`` labels, in offset order. Malformed labels are only counted (their
    offsets still commit)."""
    out = Routed()
    grouped: dict[tuple[int, int], list[tuple[str, int, int]]] = defaultdict(list)
    for r in batch:
        out.next_offsets[r.partition] = max(out.next_offsets.get(r.partition, 0), r.offset + 1)
        label = parse_label(r.value, now_s, max_skew_s)
        if label is None:
            out.rejected += 1
            continue
        grouped[(r.partition, key_partition(label[0].encode(), partitions))].append(label)
    for (source, target), labels in grouped.items():
        for i in range(0, len(labels), LABELS_PER_RECORD):
            out.records[source].append(
                (topic, None, labels_record(labels[i:i + LABELS_PER_RECORD]), target))
    return out


async def route_fenced(outputs: FencedOutputs, routed: Routed) -> Committed:
    """Hop 1 under exactly-once: per labels partition one transaction with its routed labels
    and its consumed offset. Partitions not open here (fenced or revoked) are dropped."""
    mine = outputs.partitions
    gone = set(routed.next_offsets) - mine
    done = await commit_each(outputs, {p: v for p, v in routed.records.items() if p in mine},
                             {p: o for p, o in routed.next_offsets.items() if p in mine})
    done.fenced |= gone
    return done


@dataclass
class Applied:
    """What one batch of merchant-labels did."""

    #: Labels applied.
    applied: int = 0
    #: Labels already in their merchant's state (delivered again), skipped.
    duplicates: int = 0
    #: Labels of partitions another owner has taken (or not open here), dropped.
    fenced: int = 0
    #: Records in no known form, skipped (their offsets still commit).
    rejected: int = 0
    #: Next offset committed per merchant-labels partition.
    committed: dict[int, int] = field(default_factory=dict)


class MerchantLabelApplier:
    """Hop 2 under exactly-once: merchant states and merchant-labels offsets in one
    transaction per partition, built on the last committed state (see the module docstring).

    ``table`` reads this worker's copy of the merchants table (stored values, which
    ``decode`` turns into wire forms: ``orjson.loads`` for Faust's raw bytes);
    ``applied_offset()`` is how far that copy has applied its changelog (None: in the middle
    of a record); ``changelog_target()`` is the offset of the changelog's last committed
    record now (-1: none); ``changelog_records(start, stop)`` reads the changelog's committed
    records in that range from Kafka; ``on_written`` hears of each state a committed
    transaction wrote (the scoring step's decoded states take it instead of decoding it again).
    A batch's work gives the event loop a turn every ``slice_s`` seconds (``time_slices``).
    """

    def __init__(self, *, outputs: FencedOutputs, changelog_topic: str,
                 table: Mapping[bytes, Any], applied_offset: Callable[[], int | None],
                 changelog_target: Callable[[], Awaitable[int]],
                 changelog_records: ChangelogRange,
                 decode: Callable[[Any], Any] = as_is,
                 on_written: OnWritten | None = None, slice_s: float = SLICE_S) -> None:
        self.outputs = outputs
        #: Longest stretch of a batch's work between two turns of the event loop.
        self.slice_s = slice_s
        self.on_written = on_written
        self.changelog_topic = changelog_topic
        self.applied_offset = applied_offset
        self.changelog_target = changelog_target
        self.changelog_records = changelog_records
        #: Held by ``apply`` and by whoever reopens the outputs (an assignment).
        self.lock = asyncio.Lock()
        #: Committed states newer than this worker's table copy, with their changelog offset
        #: (its own writes, and what ``_settle`` read), until the copy has applied them.
        self._written: dict[bytes, tuple[MerchantRecord, int]] = {}
        #: The table copy's records, decoded once per value it holds (copied before a change).
        self._stored = DecodedTable(table, MerchantRecord.from_wire, decode)
        self._settled = False

    def reset(self) -> None:
        """A new assignment (after its fence): forget own writes, catch up before applying."""
        self._written.clear()
        self._settled = False

    async def _settle(self) -> None:
        """Get every state a previous owner committed (after the fence, nobody else writes
        them): the changelog's committed records that this worker's table copy has not
        applied yet, read from Kafka and kept beside the copy until it has applied them.

        Waiting for the copy to catch up instead can deadlock: Faust feeds the copy from the
        same fetch loop that hands this agent its records, and that loop stops while this
        agent's buffer is full (measured: a burst of labels after a rebalance stopped a
        worker for good, transactions included).
        """
        started = time.monotonic()
        target = await self.changelog_target()
        applied = await self._applied_now()
        read = 0
        if target > applied:
            records = await self.changelog_records(applied + 1, target)
            read = len(records)
            for key, value, offset in records:
                if key is not None:
                    wire = None if value is None else orjson.loads(value)
                    self._written[key] = (MerchantRecord.from_wire(wire), offset)
        logger.info("merchant labels settled target=%d applied=%d read=%d waited_s=%.2f",
                    target, applied, read, time.monotonic() - started)
        self._settled = True

    async def _applied_now(self) -> int:
        """How far the table copy has applied its changelog; -1 (read it all) when it is in
        the middle of a record for longer than ``SETTLE_WARN_S``."""
        deadline = time.monotonic() + SETTLE_WARN_S
        while (applied := self.applied_offset()) is None:
            if time.monotonic() > deadline:
                logger.warning("merchants table copy busy applying a record; reading the "
                               "whole changelog")
                return -1
            await asyncio.sleep(SETTLE_POLL_S)
        return applied

    def _forget_applied(self, applied: int | None) -> None:
        """Drop own writes the table copy has applied: its values are then the same (nobody
        else writes these merchants)."""
        if applied is not None:
            self._written = {key: mine for key, mine in self._written.items()
                             if mine[1] > applied}

    def committed_state(self, key: bytes) -> MerchantState | None:
        """The merchant's state as this worker last committed it, while its table copy may
        not hold it yet (None: the copy's is the last committed one; nobody else writes the
        merchants of this worker's partitions)."""
        mine = self._written.get(key)
        return None if mine is None else mine[0].state

    def _current(self, key: bytes) -> MerchantRecord:
        """The last committed state of a merchant: this worker's own last write while its
        table copy has not applied it, else the table's."""
        mine = self._written.get(key)
        # A copy: the batch's changes must not stay here if its transaction fails.
        return (mine[0] if mine is not None else self._stored.get(key)).copy()

    async def apply(self, batch: Sequence[RawRecord]) -> Applied:
        """Apply a batch of merchant-labels records; raises when a transaction failed for
        another reason than a new owner (the caller must not go on)."""
        async with self.lock:
            if not self._settled:
                await self._settle()
            out = Applied()
            mine = self.outputs.partitions
            self._forget_applied(self.applied_offset())
            states: dict[int, dict[bytes, MerchantRecord]] = defaultdict(dict)
            next_offsets: dict[int, int] = {}
            counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # applied, duplicates
            # A second's labels: the scoring step gets the loop between slices of this work.
            slices = Slices(self.slice_s)
            for r in sorted(batch, key=lambda r: (r.partition, r.offset)):
                labels = labels_in(r.key, r.value)
                if r.partition not in mine:
                    out.fenced += 1 if labels is None else len(labels)
                    continue
                next_offsets[r.partition] = max(next_offsets.get(r.partition, 0), r.offset + 1)
                if labels is None:
                    logger.error("merchant-labels record in no known form, skipped "
                                 "partition=%d offset=%d", r.partition, r.offset)
                    out.rejected += 1
                    continue
                per_merchant: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
                for key, ts, is_fraud in labels:
                    per_merchant[key].append((ts, is_fraud))
                touched, tally = states[r.partition], counts[r.partition]
                for key, pairs in per_merchant.items():
                    await slices.pause()
                    record = touched.get(key)
                    if record is None:
                        record = touched[key] = self._current(key)
                    if record.seen(r.partition, r.offset):
                        tally[1] += len(pairs)
                        continue
                    record.add(r.partition, r.offset, pairs)
                    tally[0] += len(pairs)
            topic = self.changelog_topic
            # Kept: the decoded-state caches hold each one until the merchant's next write.
            encoded: dict[int, dict[bytes, bytes]] = {}
            for p, touched in states.items():
                values = encoded[p] = {}
                async for key in slices.each(touched):
                    values[key] = dumps_kept(touched[key].to_wire())
            outputs = {p: [(topic, key, value, 0) for key, value in values.items()]
                       for p, values in encoded.items()}
            done = await commit_each(self.outputs, outputs, next_offsets)
            # The furthest offset any of the batch's transactions reached: no state of the
            # batch is in the table copy before it has applied that far.
            reached = done.written.get((topic, 0), -1)
            for partition, (applied, duplicates) in counts.items():
                if partition in done.partitions:
                    out.applied += applied
                    out.duplicates += duplicates
                    for key, rec in states[partition].items():
                        await slices.pause()
                        self._written[key] = (rec, reached)
                        # Once the table's copy holds this write, neither this applier nor
                        # the scoring step decodes it again.
                        self._stored.prime(key, encoded[partition][key], rec)
                        if self.on_written is not None:
                            self.on_written(key, encoded[partition][key], rec.state)
                else:
                    out.fenced += applied + duplicates
            out.committed = {p: next_offsets[p] for p in done.partitions if p in next_offsets}
            if done.failure is not None:
                raise done.failure
            return out
