"""Metrics, drift, alert rules, runbook and dashboards."""
