"""The label-crash scenario's judge: the merchant's counts must equal what was sent."""

from __future__ import annotations

import orjson

from fraudstream.chaos import SCENARIOS
from fraudstream.chaos.label_crash import LabelCounts, label, problems, sent_counts
from fraudstream.chaos.report import ChaosReport
from fraudstream.workers.merchant_labels import merchant_label


def test_the_judge_passes_only_exact_counts() -> None:
    sent = sent_counts(700)
    assert sent == LabelCounts(700, 100)
    assert problems(sent, LabelCounts(700, 100)) == []
    assert problems(sent, LabelCounts(701, 100)) == [
        "the merchant counts 701 labels (100 frauds); 700 (100) were sent"]
    assert problems(sent, LabelCounts(700, 99))
    assert problems(sent, None) == ["the merchant's counts never settled (700 labels sent)"]
    assert problems(None, None) == ["the labels were not sent"]


def test_the_scenarios_labels_are_valid_and_spread_over_cards() -> None:
    now = 1_800_000_000.0
    keys = set()
    for i in range(70):
        key, value = label("M1", i, now)
        keys.add(key)
        routed = merchant_label(value, now, 300.0)
        assert routed is not None and routed[0] == b"M1"
        assert orjson.loads(routed[1])[1] == int(i % 7 == 0)
    assert len(keys) == 64


def test_the_scenario_is_in_the_table_and_its_numbers_in_the_report() -> None:
    scenario = SCENARIOS["label-crash"]
    assert scenario.merchant_label_rate == 500 and scenario.expect_failover
    report = ChaosReport("label-crash", merchant_labels={
        "sent": 700, "sent_frauds": 100, "counted": 700, "counted_frauds": 100})
    assert ("Labels for the one merchant: sent 700 (100 frauds), counted 700 (100 frauds)"
            in report.markdown())
