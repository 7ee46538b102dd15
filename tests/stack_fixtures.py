"""The real local stack for integration and chaos tests: Kafka, Redis, Prometheus, Alertmanager.

Ports and the state folder are the tests' own, so a developer's running demo is left alone;
topics and consumer groups are uuid-named per test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fraudstream.deploy.local import LocalStack, StackConfig
from fraudstream.model_registry.artifact import save_signed
from fraudstream.model_registry.training import train
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.workers.pool import WorkerPool

# Below the ephemeral range (32768+ on Linux): a client socket must never take a server port.
BASE_PORT = int(os.environ.get("FRAUDSTREAM_TEST_BASE_PORT", "21000"))
API_PORT = BASE_PORT + 80
SIGNING_KEY = "integration-test-key"


@pytest.fixture(scope="session")
def stack_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def stack(stack_root: Path) -> Iterator[LocalStack]:
    # The API's port too: the stack's Alertmanager posts to it and its Prometheus scrapes
    # it, and on the default (8000) they reached a user's own `fraudstream api` with the
    # tests' alerts (a newcomer's walkthrough, 2026-12-05).
    s = LocalStack(StackConfig(root=stack_root, kafka_port=BASE_PORT + 92,
                               redis_port=BASE_PORT + 79, prometheus_port=BASE_PORT + 90,
                               alertmanager_port=BASE_PORT + 93, api_port=API_PORT,
                               webhook_url=f"http://127.0.0.1:{API_PORT}/api/alerts/webhook"))
    try:
        s.up()
        yield s
    finally:
        s.down()


@pytest.fixture(scope="session")
def base_settings(stack: LocalStack, stack_root: Path) -> Settings:
    """Settings pointing at the test stack, with a small signed model."""
    model_path = stack_root / "models" / "current.skops"
    trained = train(simulate(SimulationConfig(n_customers=300, n_terminals=600, nb_days=40,
                                              seed=5)), "logreg")
    save_signed(model_path, trained.model_bytes, trained.manifest, SIGNING_KEY.encode())
    return Settings(bootstrap_servers=stack.bootstrap, state_dir=stack_root,
                    redis_password=stack.redis.secret(),
                    kafka_port=stack.config.kafka_port, redis_port=stack.config.redis_port,
                    prometheus_port=stack.config.prometheus_port,
                    alertmanager_port=stack.config.alertmanager_port, model_path=model_path,
                    signing_key=SIGNING_KEY, worker_web_port=BASE_PORT + 200, api_port=API_PORT,
                    supervisor_port=BASE_PORT + 199)


def isolated(base: Settings, name: str, tag: str | None = None, **extra: Any) -> Settings:
    """``base`` with a consumer group (``fs-<name>-<tag>``) and every topic of its own, plus
    ``extra``: what a test starts never meets what another started."""
    tag = tag or uuid.uuid4().hex[:8]
    return dataclasses.replace(
        base, app_id=f"fs-{name}-{tag}", topic_transactions=f"tx-{tag}",
        topic_scores=f"scores-{tag}", topic_dlq=f"dlq-{tag}", topic_labels=f"labels-{tag}",
        topic_model_updates=f"model-updates-{tag}", topic_events=f"events-{tag}",
        topic_model_store=f"model-store-{tag}", **extra)


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Per-test topics, consumer group and model registry: tests never see each other's."""
    tag = uuid.uuid4().hex[:8]
    # A model registry of its own too (empty: workers serve model_path until a test promotes).
    stores = (f"file://{base_settings.state_dir}/registry-{tag},"
              f"{base_settings.redis_connection_url}?prefix=fs-test-{tag}")
    return isolated(base_settings, "test", tag, model_stores=stores)


@contextlib.contextmanager
def running_pool(settings: Settings, count: int, log_lines: int = 40) -> Iterator[WorkerPool]:
    """``count`` ready workers on fresh topics; their log tails are printed when they stop."""
    from fraudstream.workers.topics import ensure_topics

    ensure_topics(settings)
    pool = WorkerPool(settings, count)
    pool.start()
    try:
        pool.wait_ready(timeout=120)
        yield pool
    finally:
        pool.stop()
        for w in pool.workers:
            print(f"--- worker {w.index} log tail\n{w.log_tail(log_lines)}")


@pytest.fixture
def one_worker(settings: Settings) -> Iterator[WorkerPool]:
    with running_pool(settings, 1) as pool:
        yield pool
