"""``fraudstream registry`` against the real stack: promotions announced on Kafka, errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest

from fraudstream.model_registry.artifact import read_manifest, save_signed
from fraudstream.model_registry.updates import ModelUpdate
from fraudstream.settings import Settings
from fraudstream.streaming import TopicReader
from fraudstream.workers.topics import ensure_topics
from tests.integration.test_cli import cli
from tests.stack_fixtures import SIGNING_KEY

pytestmark = pytest.mark.integration


def copy_as(model_path: Path, out: Path, version: str) -> Path:
    manifest = dataclasses.replace(read_manifest(model_path), version=version, signature="")
    return save_signed(out, model_path.read_bytes(), manifest, SIGNING_KEY.encode())


async def latest_updates(settings: Settings) -> dict[str, ModelUpdate]:
    latest: dict[str, ModelUpdate] = {}
    async with TopicReader(settings.kafka_bootstrap, [settings.topic_model_updates]) as reader:
        for _ in range(6):
            for _t, _k, value, _ts in await reader.poll(0.5):
                update = ModelUpdate.from_bytes(value)
                assert update is not None
                latest[update.alias] = update
    return latest


def test_promote_and_rollback_are_announced(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings)
    tag = settings.app_id.rsplit("-", 1)[-1]
    v1, v2 = f"cli1-{tag}", f"cli2-{tag}"
    first = copy_as(settings.model_path, tmp_path / "a.skops", v1)
    second = copy_as(settings.model_path, tmp_path / "b.skops", v2)
    done = cli(settings, "registry", "import", str(first), "--promote")
    assert done.returncode == 0, done.stderr
    assert cli(settings, "registry", "import", str(second)).returncode == 0
    promoted = cli(settings, "registry", "promote", v2)
    assert promoted.returncode == 0 and f"production: {v1} -> {v2}" in promoted.stdout
    assert asyncio.run(latest_updates(settings))["production"].version == v2
    back = cli(settings, "registry", "rollback")
    assert back.returncode == 0, back.stderr
    assert asyncio.run(latest_updates(settings))["production"].version == v1
    listed = cli(settings, "registry", "list", "--json")
    rows = {r["version"]: r["aliases"] for r in json.loads(listed.stdout)}
    assert rows == {v1: ["production"], v2: []}
    verified = cli(settings, "registry", "verify")
    assert verified.returncode == 0, verified.stdout
    unknown = cli(settings, "registry", "promote", "no-such-version")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1


def test_registry_with_its_stores_down_is_a_one_line_error(settings: Settings) -> None:
    down = dataclasses.replace(settings, model_stores="redis://127.0.0.1:1/0")
    result = cli(down, "registry", "list")
    assert result.returncode == 2
    assert "no model store answered" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_promote_with_kafka_down_is_one_line_within_seconds(settings: Settings,
                                                            tmp_path: Path) -> None:
    import socket
    import time

    tag = settings.app_id.rsplit("-", 1)[-1]
    version = f"down-{tag}"
    imported = cli(settings, "registry", "import",
                   str(copy_as(settings.model_path, tmp_path / "d.skops", version)))
    assert imported.returncode == 0, imported.stderr
    with socket.socket() as closed:  # bound, not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        down = dataclasses.replace(settings,
                                   bootstrap_servers=f"127.0.0.1:{closed.getsockname()[1]}")
        started = time.monotonic()
        result = cli(down, "registry", "promote", version)
        elapsed = time.monotonic() - started
    assert result.returncode == 2
    *before, last = result.stderr.strip().splitlines()
    # What was done (the promotion is recorded in the stores), then the one-line error.
    assert [line.split(" ", 3)[2:3] for line in before] == [["INFO"]] * len(before), before
    assert last.startswith(f"fraudstream registry: error: Kafka at {down.kafka_bootstrap} "
                           "unreachable; the promotion is recorded but not announced"), last
    assert elapsed < 15.0  # kafka-python's own bootstrap wait was 30 s
