"""The bridge pieces the label path relies on: Faust kept from committing several topics, and
how far a global table's copy has applied its changelog."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP

from fraudstream.workers.faust_bridge import commit_outside_faust, table_applied_offset


def test_faust_commits_none_of_the_topics_the_transactions_commit() -> None:
    consumer: Any = SimpleNamespace()
    commit_outside_faust(consumer, "tx", "labels", "app-merchant-labels")
    for topic in ("tx", "labels", "app-merchant-labels"):
        assert not Consumer._should_commit(consumer, TP(topic, 0), 10)
    assert consumer._fraudstream_transactional_topics == {"tx", "labels",
                                                          "app-merchant-labels"}


def test_no_offset_gaps_are_kept_for_the_topics_the_transactions_commit() -> None:
    """Each transaction marker is an offset gap; Faust trims its gap tree only when it commits
    the topic itself, so for these topics the tree would grow by one interval per
    transaction, rebuilt on every addition."""
    from collections import defaultdict

    from intervaltree import IntervalTree

    consumer: Any = SimpleNamespace(_gap=defaultdict(IntervalTree),
                                    _committed_offset=defaultdict(lambda: None))
    consumer._gap[TP("app-merchant-labels", 1)].addi(3, 5)
    commit_outside_faust(consumer, "tx", "labels", "app-merchant-labels")
    assert TP("app-merchant-labels", 1) not in consumer._gap

    async def gaps() -> None:
        for marker in range(10, 1010, 2):
            await Consumer._add_gap(consumer, TP("app-merchant-labels", 0), marker, marker + 1)
        # Topics Faust commits keep Faust's own bookkeeping.
        await Consumer._add_gap(consumer, TP("other", 0), 10, 11)

    asyncio.run(gaps())
    assert not consumer._gap[TP("app-merchant-labels", 0)]
    assert len(consumer._gap[TP("other", 0)]) == 1


def test_the_applied_offset_is_the_last_record_applied_and_unknown_while_one_is_applied(
        ) -> None:
    class Table:
        changelog_topic = SimpleNamespace(get_topic_name=lambda: "app-merchants-changelog")

    table = Table()
    recovery = SimpleNamespace(buffers={}, active_offsets={})
    app = SimpleNamespace(tables=SimpleNamespace(recovery=recovery))
    assert table_applied_offset(app, table) == -1
    recovery.active_offsets[TP("app-merchants-changelog", 0)] = 41
    assert table_applied_offset(app, table) == 41
    # Faust sets the offset before it applies the record (the buffer holds it meanwhile).
    recovery.buffers[table] = ["event"]
    assert table_applied_offset(app, table) is None
