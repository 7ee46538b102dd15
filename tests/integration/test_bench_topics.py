"""The benchmark leaves no topics behind: each run's own and Faust's go, nobody else's."""

from __future__ import annotations

import pytest

from fraudstream import kafka_clients
from fraudstream.bench.harness import discard, fresh
from fraudstream.settings import Settings
from fraudstream.workers.topics import TopicSpec, card_changelog_spec, ensure_topics
from tests.conftest import wait_until

pytestmark = pytest.mark.integration


def topics(settings: Settings) -> set[str]:
    admin = kafka_clients.admin(settings, client_id="test-bench-topics")
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_discard_deletes_a_runs_topics_and_only_them(settings: Settings) -> None:
    run, other = fresh(settings, "2 workers"), fresh(settings, "2 workers")
    for s in (run, other):
        # The run's own topics, and one named the way Faust names a table's changelog.
        ensure_topics(s, [card_changelog_spec(s),
                          TopicSpec(f"{s.app_id}-merchant-labels", 1, 1, {})])
    mine = {n for n in topics(settings) if run.app_id.removeprefix("bench-") in n}
    assert {run.topic_transactions, run.topic_scores, f"{run.app_id}-cards-changelog",
            f"{run.app_id}-merchant-labels"} <= mine

    assert set(discard(run)) == mine
    wait_until(lambda: not mine & topics(settings), 30, "the run's topics are still listed")
    left = topics(settings)
    assert {other.topic_transactions, f"{other.app_id}-cards-changelog"} <= left
    discard(other)


def test_a_held_preload_appears_to_read_committed_readers_only_once_released(
        settings: Settings) -> None:
    """A drain's records wait in an open transaction while its contender starts (and a
    pool's group settles), then appear at once: the timing never covers the group's forming."""
    import asyncio

    from fraudstream.bench.harness import HeldPreload
    from fraudstream.streaming import Outgoing, TopicReader

    run = fresh(settings, "held")
    ensure_topics(run, [])
    records = [Outgoing(b"C%d" % i, b'{"n": %d}' % i, label=b'{"l": %d}' % i)
               for i in range(50)]

    async def read(for_s: float) -> int:
        seen = 0
        async with TopicReader(run, [run.topic_transactions, run.topic_labels],
                               from_beginning=True) as reader:
            deadline = asyncio.get_running_loop().time() + for_s
            while asyncio.get_running_loop().time() < deadline and seen < 100:
                seen += len(await reader.poll(0.2))
        return seen

    loop = asyncio.new_event_loop()
    held = HeldPreload(run)
    try:
        loop.run_until_complete(held.write(records))
        assert loop.run_until_complete(read(2.0)) == 0, "seen before the release"
        loop.run_until_complete(held.release())
        assert loop.run_until_complete(read(15.0)) == 100
    finally:
        loop.run_until_complete(held.close())
        loop.close()
        discard(run)
