"""The model the demo, chaos and the benchmark start from: the benchmark's stack runs Kafka
alone, so it takes the model file as it is instead of asking a registry that is not there
(every bench printed "model registry unavailable ... Connection refused")."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from fraudstream.commands import train_cmd
from fraudstream.model_registry import artifact
from fraudstream.settings import Settings


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(train_cmd, "train_to_file", lambda *a: calls.append("train"))
    monkeypatch.setattr(artifact, "load_verified",
                        lambda *a: SimpleNamespace(version="hgb-file"))

    def production(settings: Any) -> str:
        calls.append("registry")
        return "hgb-registered"
    monkeypatch.setattr(train_cmd, "ensure_production", production)
    return calls


def test_without_registering_the_file_is_served_and_no_registry_is_asked(
        trained: list[str]) -> None:
    settings = Settings(signing_key="k" * 32)
    assert train_cmd.ensure_model(settings, register=False) == "hgb-file"
    assert trained == ["train"]


def test_by_default_the_model_is_registered(trained: list[str]) -> None:
    settings = Settings(signing_key="k" * 32)
    assert train_cmd.ensure_model(settings) == "hgb-registered"
    assert trained == ["train", "registry"]
