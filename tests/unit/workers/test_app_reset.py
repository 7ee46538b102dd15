"""Which topics a reset of the app takes (``fraudstream demo --fresh``), without Kafka."""

from __future__ import annotations

import pytest
from kafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError

from fraudstream.settings import Settings
from fraudstream.workers import app_reset
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


class Admin:
    """Answers ``delete_groups`` from a script: a value is returned, an exception raised."""

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.asked = 0

    def delete_groups(self, groups: list[str]) -> dict[str, str]:
        self.asked += 1
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return {groups[0]: str(step)}


def test_a_group_is_asked_again_while_its_coordinator_is_not_there_yet(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # kafka-python 3 raises this, not answers it, on a broker that never held a group
    # (make demo's reset on a fresh stack stopped with its traceback, 2026-12-05).
    monkeypatch.setattr(app_reset, "_POLL_S", 0.0)
    admin = Admin(CoordinatorNotAvailableError("creating __consumer_offsets"),
                  "CoordinatorLoadInProgressError", "NonEmptyGroupError", "OK")
    app_reset._delete_group(admin, "g")
    assert admin.asked == 4


def test_a_group_that_is_not_there_is_deleted_and_other_errors_are_raised(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_reset, "_POLL_S", 0.0)
    app_reset._delete_group(Admin("GroupIdNotFoundError"), "g")
    with pytest.raises(GroupAuthorizationFailedError):
        app_reset._delete_group(Admin(GroupAuthorizationFailedError("no")), "g")


def test_a_group_that_keeps_its_members_stops_the_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_reset, "_POLL_S", 0.0)
    monkeypatch.setattr(app_reset, "GROUP_EMPTY_WAIT_S", 0.0)
    with pytest.raises(app_reset.AppBusy, match="still has members"):
        app_reset._delete_group(Admin("NonEmptyGroupError", "NonEmptyGroupError"), "g")
