"""The local Prometheus's configuration names its rule and target files by absolute paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fraudstream.deploy.local.services import PrometheusServer


def test_relative_paths_are_written_absolute(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Prometheus reads a relative rule_files entry against its config file's directory: the
    # default state dir (.stack) and `chaos run --alert-time-scale` once left it with no rules.
    monkeypatch.chdir(tmp_path)
    server = PrometheusServer(root=Path(".stack"), host="127.0.0.1", port=9090,
                              alertmanager_port=9093, rules_dir=Path(".stack/chaos-rules"))
    config = server.config()
    assert f"  - {tmp_path}/.stack/chaos-rules/*.yml\n" in config
    assert f"['{tmp_path}/.stack/prometheus/targets/*.json']" in config
    assert os.path.isabs(config.split("rule_files:\n  - ")[1].split("*")[0])
