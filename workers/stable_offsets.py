"""The group's committed offsets as a new owner of input partitions must read them: stable.

A worker that takes input partitions over first fences their transactional ids
(``workers.fenced_outputs``): the broker completes or aborts the predecessor's last
transaction. Only then does it read where its ownership starts. The offsets a transaction
commits stay *pending* in the group until the transaction's markers are written (KIP-447),
and the OffsetFetch request aiokafka sends (version 3 at most) answers with the committed
offset from before them meanwhile. Measured on a three-node cluster (markers wait for two
replicas): Faust's own read at the rebalance, which runs before the fence, named an offset 430
records back, and the new owner scored those records a second time.

OffsetFetch version 7 asks for stable offsets (``require_stable``): while a transaction holding
an offset of a partition is pending, the broker answers that partition with
UNSTABLE_OFFSET_COMMIT, and the reader asks again until it is settled or ``timeout_s`` ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

if TYPE_CHECKING:
    from fraudstream.settings import Settings

logger = logging.getLogger(__name__)

#: OffsetFetch error codes: the partition's offsets are pending in a transaction; the
#: coordinator is loading the group, has moved or is not available (ask it again).
UNSTABLE_OFFSET_COMMIT = 88
COORDINATOR_RETRY = {14, 15, 16}
#: Pause between two reads of a partition still pending.
RETRY_S = 0.05
#: The longest a read waits for pending offsets: beyond the producers' transaction timeout
#: (aiokafka's default, 60 s), after which the broker aborts any transaction left open.
TIMEOUT_S = 90.0


class OffsetsUnsettled(KafkaError):
    """The committed offsets of some partitions stayed pending in a transaction beyond the
    wait (a transaction the broker neither completed nor aborted)."""

    retriable = True


class _OffsetFetchResponseV7(Response):
    API_KEY = 9
    API_VERSION = 7
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("topics", CompactArray(
            ("name", CompactString("utf-8")),
            ("partitions", CompactArray(
                ("partition_index", Int32),
                ("committed_offset", Int64),
                ("committed_leader_epoch", Int32),
                ("metadata", CompactString("utf-8")),
                ("error_code", Int16),
                ("tags", TaggedFields))),
            ("tags", TaggedFields))),
        ("error_code", Int16),
        ("tags", TaggedFields))


class _OffsetFetchRequestV7(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 9
    API_VERSION = 7
    RESPONSE_TYPE = _OffsetFetchResponseV7
    SCHEMA = Schema(
        ("group_id", CompactString("utf-8")),
        ("topics", CompactArray(
            ("name", CompactString("utf-8")),
            ("partition_indexes", CompactArray(Int32)),
            ("tags", TaggedFields))),
        ("require_stable", Boolean),
        ("tags", TaggedFields))


class StableOffsetFetch(Request[_OffsetFetchRequestV7]):
    """OffsetFetch v7 with ``require_stable`` (brokers from Kafka 2.5 on)."""

    API_KEY = 9

    def __init__(self, group_id: str, partitions: Mapping[str, Iterable[int]]) -> None:
        self.group_id = group_id
        self.partitions = {topic: sorted(set(ps)) for topic, ps in partitions.items()}

    def build(self, request_struct_class: type[_OffsetFetchRequestV7]) -> _OffsetFetchRequestV7:
        no_tags: dict[int, bytes] = {}
        topics = [(topic, ps, no_tags) for topic, ps in sorted(self.partitions.items())]
        return request_struct_class(self.group_id, topics, True, no_tags)


def answers(response: Any) -> tuple[dict[tuple[str, int], int | None],
                                     set[tuple[str, int]], int]:
    """A response's settled offsets (next to read; None: the group has none), the partitions
    still pending, and the first error code (0: none) that is neither."""
    settled: dict[tuple[str, int], int | None] = {}
    pending: set[tuple[str, int]] = set()
    error = int(response.error_code)
    for name, partitions, _tags in response.topics:
        for index, offset, _epoch, _metadata, code, _ptags in partitions:
            where = (name, int(index))
            if code == UNSTABLE_OFFSET_COMMIT:
                pending.add(where)
            elif code:
                error = error or int(code)
            else:
                settled[where] = int(offset) if offset >= 0 else None
    return settled, pending, error


class StableOffsets:
    """Reads a consumer group's committed offsets, waiting out pending transactions."""

    def __init__(self, settings: Settings | str, group_id: str,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.settings = settings
        self.group_id = group_id
        self.timeout_s = timeout_s
        self._client: Any = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Connect (once; concurrent callers wait for the same connection)."""
        from fraudstream import kafka_clients

        async with self._starting:
            if self._client is None:
                client = kafka_clients.aio_client(self.settings,
                                                  client_id="fraudstream-offsets")
                try:
                    await client.bootstrap()
                except BaseException:
                    await client.close()
                    raise
                self._client = client

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def read(self, partitions: Mapping[str, Iterable[int]]
                   ) -> dict[tuple[str, int], int | None]:
        """The committed offset (next to read) of each (topic, partition), once no
        transaction holding one of them is pending; None where the group has none.

        Raises:
            OffsetsUnsettled: some stayed pending for ``timeout_s``.
            KafkaError: the coordinator answered with another error.
        """
        from aiokafka.client import CoordinationType
        from aiokafka.errors import for_code

        wanted = {topic: set(ps) for topic, ps in partitions.items() if ps}
        found: dict[tuple[str, int], int | None] = {}
        settled: dict[tuple[str, int], int | None]
        pending: set[tuple[str, int]]
        if not wanted:
            return found
        await self.start()
        deadline = time.monotonic() + self.timeout_s
        waits = 0
        while wanted:
            try:
                node = await self._client.coordinator_lookup(CoordinationType.GROUP,
                                                             self.group_id)
                response = await self._client.send(node,
                                                   StableOffsetFetch(self.group_id, wanted))
            except KafkaError as exc:  # a coordinator moving, a broker restarting
                if not exc.retriable or time.monotonic() > deadline:
                    raise
                settled, pending, error = {}, set(), 0
            else:
                settled, pending, error = answers(response)
            if error and error not in COORDINATOR_RETRY:
                raise for_code(error)(f"OffsetFetch of group {self.group_id}")
            found.update(settled)
            for topic, partition in settled:
                wanted[topic].discard(partition)
            wanted = {topic: ps for topic, ps in wanted.items() if ps}
            if not wanted:
                break
            if time.monotonic() > deadline:
                raise OffsetsUnsettled(
                    f"committed offsets of group {self.group_id} still pending in a "
                    f"transaction after {self.timeout_s:g} s: {sorted(pending)}")
            waits += 1
            if waits == 1 or waits % 100 == 0:
                if pending:
                    logger.info("committed offsets pending in a transaction, waiting "
                                "partitions=%s", sorted(pending))
                else:
                    logger.info("group coordinator not answering yet, asking again "
                                "group=%s error=%s", self.group_id, error)
            await asyncio.sleep(RETRY_S)
        if waits:
            logger.info("committed offsets settled after %d reads", waits + 1)
        return found
