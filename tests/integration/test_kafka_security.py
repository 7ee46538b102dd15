"""Every Kafka client against a broker that only speaks SASL_SSL (PLAIN and SCRAM-SHA-512).

The broker is the local stack's KRaft node with its client listener secured
(``deploy.local.kafka_security``), with a CA and a broker certificate made by openssl for this
run. Nothing here can pass over PLAINTEXT: the listener accepts TLS with a SASL login only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fraudstream.deploy.local import LocalStack, StackConfig
from fraudstream.deploy.local.certificates import LocalPki, make_local_pki
from fraudstream.deploy.local.kafka_security import SecureListener
from fraudstream.model_registry.artifact import save_signed
from fraudstream.model_registry.training import train
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.streaming import TopicReader, new_producer
from fraudstream.workers.topics import ensure_topics, list_topics
from tests.stack_fixtures import BASE_PORT, SIGNING_KEY, running_pool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Away from the shared stack's ports (BASE_PORT + 79..1093, workers at + 200).
KAFKA_PORT = BASE_PORT + 392
WORKER_WEB_PORT = BASE_PORT + 250
PLAIN_USER, PLAIN_PASSWORD = "bob", "bob-plain-secret"
SCRAM_USER, SCRAM_PASSWORD = "alice", "alice-scram-secret"
USERS = {"PLAIN": (PLAIN_USER, PLAIN_PASSWORD), "SCRAM-SHA-512": (SCRAM_USER, SCRAM_PASSWORD)}
TRANSACTION = {"transaction_id": "sec-1", "timestamp": "2026-01-01T00:00:00Z",
               "card_id": "card-7", "merchant_id": "m-3", "amount": 42.5}


@dataclasses.dataclass(frozen=True)
class SecureKafka:
    bootstrap: str
    pki: LocalPki
    root: Path


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """A one-node KRaft broker whose only client listener is SASL_SSL."""
    root = tmp_path_factory.mktemp("secure-stack")
    pki = make_local_pki(root / "pki")
    listener = SecureListener(pki, plain_users=((PLAIN_USER, PLAIN_PASSWORD),),
                              scram_users=((SCRAM_USER, SCRAM_PASSWORD),))
    stack = LocalStack(StackConfig(root=root, kafka_port=KAFKA_PORT, kafka_secure=listener,
                                   redis_port=BASE_PORT + 379, prometheus_port=BASE_PORT + 390,
                                   alertmanager_port=BASE_PORT + 393))
    try:
        stack.up(("kafka",))
        yield SecureKafka(stack.bootstrap, pki, root)
    finally:
        stack.down()


@pytest.fixture(scope="module")
def model_path(secure_kafka: SecureKafka) -> Path:
    path = secure_kafka.root / "models" / "current.skops"
    trained = train(simulate(SimulationConfig(n_customers=200, n_terminals=400, nb_days=30,
                                              seed=5)), "logreg")
    save_signed(path, trained.model_bytes, trained.manifest, SIGNING_KEY.encode())
    return path


def secured(kafka: SecureKafka, mechanism: str, password: str | None = None,
            **overrides: Any) -> Settings:
    """Settings for ``mechanism``'s user over SASL_SSL, on fresh uuid-named topics."""
    user, right_password = USERS[mechanism]
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        bootstrap_servers=kafka.bootstrap, state_dir=kafka.root,
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism=mechanism,
        kafka_sasl_username=user, kafka_sasl_password=password or right_password,
        kafka_ssl_cafile=str(kafka.pki.ca_file),
        app_id=f"fs-sec-{tag}", topic_transactions=f"tx-{tag}", topic_scores=f"scores-{tag}",
        topic_dlq=f"dlq-{tag}", topic_labels=f"labels-{tag}",
        topic_model_updates=f"model-updates-{tag}", topic_events=f"events-{tag}",
        # A file store only: these workers need nothing but the secured Kafka.
        model_stores=f"file://{kafka.root}/registry-{tag}", signing_key=SIGNING_KEY,
        worker_web_port=WORKER_WEB_PORT, supervisor_port=BASE_PORT + 249)
    return dataclasses.replace(settings, **overrides)


async def produce_and_read_back(settings: Settings) -> list[tuple[bytes | None, bytes | None]]:
    producer = new_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_transactions, orjson.dumps(TRANSACTION),
                                     key=b"card-7")
    finally:
        await producer.stop()
    async with TopicReader(settings, [settings.topic_transactions]) as reader:
        got: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            got += [(key, value) for _t, key, value, _ts in await reader.poll(0.5)]
    return got


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_admin_producer_and_reader_work_over_sasl_ssl(secure_kafka: SecureKafka,
                                                      mechanism: str) -> None:
    settings = secured(secure_kafka, mechanism)
    created = ensure_topics(settings)  # kafka-python admin: create
    assert settings.topic_transactions in created and settings.topic_scores in created
    assert set(created) <= set(list_topics(settings))  # kafka-python admin: list
    got = asyncio.run(produce_and_read_back(settings))  # aiokafka producer and consumer
    assert got == [(b"card-7", orjson.dumps(TRANSACTION))]


def test_a_worker_scores_a_transaction_over_sasl_ssl(secure_kafka: SecureKafka,
                                                    model_path: Path) -> None:
    settings = secured(secure_kafka, "SCRAM-SHA-512", model_path=model_path)

    async def score_one() -> list[dict[str, object]]:
        async with TopicReader(settings, [settings.topic_scores, settings.topic_dlq]) as reader:
            producer = new_producer(settings)
            await producer.start()
            try:
                await producer.send_and_wait(settings.topic_transactions,
                                             orjson.dumps(TRANSACTION), key=b"card-7")
            finally:
                await producer.stop()
            out: list[dict[str, object]] = []
            deadline = time.monotonic() + 60
            while not out and time.monotonic() < deadline:
                out += [{"topic": t, **orjson.loads(v or b"{}")}
                        for t, _k, v, _ts in await reader.poll(0.5)]
            return out

    with running_pool(settings, 1):  # Faust consumer, producers, topic creation: SASL_SSL
        records = asyncio.run(score_one())
    assert len(records) == 1, records
    score = records[0]
    assert score["topic"] == settings.topic_scores, score
    assert score["transaction_id"] == "sec-1" and score["card_id"] == "card-7"
    assert score["decision"] in ("approve", "review", "decline")
    assert 0.0 <= float(str(score["score"])) <= 1.0


def cli(settings: Settings, *argv: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``fraudstream <argv>`` with ``settings`` in its environment, and how long it took."""
    from fraudstream.workers.pool import settings_env

    env = {**settings_env(settings), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "fraudstream.cli", *argv], capture_output=True,
                          text=True, env=env, cwd=settings.state_dir, timeout=60)
    return proc, time.monotonic() - started


@pytest.mark.parametrize("argv", [("topics", "list"), ("tail", "scores", "--idle-timeout", "1")],
                         ids=["kafka-python", "aiokafka"])
def test_a_wrong_password_is_one_clear_line_not_a_hang(secure_kafka: SecureKafka,
                                                       argv: tuple[str, ...]) -> None:
    settings = secured(secure_kafka, "SCRAM-SHA-512", password="not-alices-password")
    proc, elapsed = cli(settings, *argv)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [
        f"fraudstream {argv[0]}: error: Kafka at {secure_kafka.bootstrap} refused user 'alice' "
        "(SCRAM-SHA-512 over SASL_SSL): [Error 58] SaslAuthenticationFailed: Authentication "
        "failed during authentication due to invalid credentials with SASL mechanism "
        "SCRAM-SHA-512; check FRAUDSTREAM_KAFKA_SASL_USERNAME, FRAUDSTREAM_KAFKA_SASL_PASSWORD "
        "and FRAUDSTREAM_KAFKA_SASL_MECHANISM"]
    assert elapsed < 20, elapsed  # kafka-python gives up after its 5 s bootstrap bound


def test_a_worker_refused_by_kafka_exits_as_misconfigured(secure_kafka: SecureKafka,
                                                          model_path: Path) -> None:
    from fraudstream.workers.health import EXIT_CONFIG_ERROR

    # A supervisor stops on this status instead of restarting a worker that cannot log in.
    settings = secured(secure_kafka, "PLAIN", password="not-bobs-password",
                       model_path=model_path)
    proc, elapsed = cli(settings, "worker", "--index", "1")
    assert proc.returncode == EXIT_CONFIG_ERROR, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1] == (
        f"fraudstream worker: error: refusing to start: Kafka at {secure_kafka.bootstrap} "
        "refused user 'bob' (PLAIN over SASL_SSL): [Error 58] SaslAuthenticationFailed: "
        "Authentication failed: Invalid username or password; check "
        "FRAUDSTREAM_KAFKA_SASL_USERNAME, "
        "FRAUDSTREAM_KAFKA_SASL_PASSWORD and FRAUDSTREAM_KAFKA_SASL_MECHANISM")
    assert elapsed < 30, elapsed


def test_an_untrusted_broker_certificate_is_named(secure_kafka: SecureKafka,
                                                  tmp_path: Path) -> None:
    stranger = make_local_pki(tmp_path / "other-ca")  # a CA that did not sign the broker
    settings = secured(secure_kafka, "PLAIN", kafka_ssl_cafile=str(stranger.ca_file))
    proc, _elapsed = cli(settings, "tail", "scores", "--idle-timeout", "1")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"fraudstream tail: error: Kafka at {secure_kafka.bootstrap}: its TLS certificate is not "
        "trusted (unable to get local issuer certificate); set FRAUDSTREAM_KAFKA_SSL_CAFILE to "
        "the CA that signed it"]


def test_the_listener_refuses_a_plaintext_client(secure_kafka: SecureKafka) -> None:
    # The control: without the security settings the same commands get nowhere.
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "FRAUDSTREAM_BOOTSTRAP_SERVERS": secure_kafka.bootstrap,
           "FRAUDSTREAM_STATE_DIR": str(secure_kafka.root)}
    proc = subprocess.run([sys.executable, "-m", "fraudstream.cli", "topics", "list"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "cannot reach Kafka" in proc.stderr
