"""OffsetFetch v7 (require_stable): the request's encoding and how answers are sorted."""

from __future__ import annotations

from io import BytesIO
from types import SimpleNamespace

from aiokafka.protocol.types import Boolean, CompactArray, CompactString, Int32, TaggedFields

from fraudstream.workers.stable_offsets import UNSTABLE_OFFSET_COMMIT, StableOffsetFetch, answers


def test_the_request_is_version_7_and_asks_for_stable_offsets() -> None:
    struct = StableOffsetFetch("group-a", {"tx": [2, 0, 2]}).prepare({9: (0, 9)})
    assert (struct.API_KEY, struct.API_VERSION, struct.FLEXIBLE_VERSION) == (9, 7, True)
    data = BytesIO(struct.encode())
    assert CompactString("utf-8").decode(data) == "group-a"
    topics = CompactArray(("name", CompactString("utf-8")),
                          ("partition_indexes", CompactArray(Int32)),
                          ("tags", TaggedFields)).decode(data)
    assert topics == [("tx", [0, 2], {})]
    assert Boolean.decode(data) is True
    assert TaggedFields.decode(data) == {}
    assert data.read() == b""


def test_a_broker_without_version_7_is_refused_not_asked_an_older_question() -> None:
    import pytest

    with pytest.raises(NotImplementedError):
        StableOffsetFetch("group-a", {"tx": [0]}).prepare({9: (0, 6)})


def response(partitions: list[tuple[int, int, int]], error: int = 0) -> SimpleNamespace:
    no_tags: dict[int, bytes] = {}
    rows = [(p, offset, -1, "", code, no_tags) for p, offset, code in partitions]
    return SimpleNamespace(error_code=error, topics=[("tx", rows, no_tags)])


def test_answers_sort_settled_pending_and_errors() -> None:
    settled, pending, error = answers(response(
        [(0, 120, 0), (1, -1, 0), (2, 50, UNSTABLE_OFFSET_COMMIT)]))
    assert settled == {("tx", 0): 120, ("tx", 1): None}
    assert pending == {("tx", 2)}
    assert error == 0
    _, _, error = answers(response([(0, -1, 16)]))
    assert error == 16
    settled, _, error = answers(response([], error=15))
    assert (settled, error) == ({}, 15)
