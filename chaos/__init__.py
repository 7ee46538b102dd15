"""Fault injection: named scenarios, a produce → fault → heal → validate runner, reports."""

from chaos.report import ChaosReport
from chaos.runner import ChaosRunner, RunPlan
from chaos.scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "ChaosReport", "ChaosRunner", "RunPlan", "Scenario"]
