"""Fault injection: named scenarios, a produce → fault → heal → validate runner, reports."""

from fraudstream.chaos.report import ChaosReport
from fraudstream.chaos.runner import ChaosRunner, RunPlan
from fraudstream.chaos.scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "ChaosReport", "ChaosRunner", "RunPlan", "Scenario"]
