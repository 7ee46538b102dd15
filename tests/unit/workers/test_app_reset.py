"""Which topics a reset of the app takes (``fraudstream demo --fresh``), without Kafka."""

from __future__ import annotations

from fraudstream.settings import Settings
from fraudstream.workers.app_reset import app_topics


def test_the_apps_topics_are_its_contract_topics_and_faust_topics_not_the_models() -> None:
    s = Settings(app_id="fraudstream-scoring")
    existing = ["transactions", "scores", "transactions.dlq", "labels", "fraudstream.events",
                "model-updates", "fraudstream-scoring-cards-changelog",
                "fraudstream-scoring-merchants-changelog", "fraudstream-scoring-merchant-labels",
                "fraudstream-scoring-__assignor-__leader", "__consumer_offsets",
                "bench-transactions-1a2b", "fraudstream-scoringX-cards-changelog", "other"]
    assert app_topics(s, existing) == sorted([
        "transactions", "scores", "transactions.dlq", "labels", "fraudstream.events",
        "fraudstream-scoring-cards-changelog", "fraudstream-scoring-merchants-changelog",
        "fraudstream-scoring-merchant-labels", "fraudstream-scoring-__assignor-__leader"])
