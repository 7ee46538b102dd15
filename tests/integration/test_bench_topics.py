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
