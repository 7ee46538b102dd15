"""One module builds every Kafka client: its option merging, and a guard over the source tree."""

from __future__ import annotations

import ast
import asyncio
import importlib
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from fraudstream import kafka_clients
from fraudstream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
#: The client classes of aiokafka and kafka-python (admins and bare clients unused today).
CLIENT_CLASSES = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient",
                  "AIOKafkaClient", "KafkaAdminClient", "KafkaConsumer", "KafkaProducer",
                  "KafkaClient"}
SKIPPED_DIRS = {".venv", ".stack", "tests", "build", "libs", ".git", "node_modules"}


def library_sources() -> list[Path]:
    """Every Python file of the project outside tests and virtualenvs."""
    return [path for path in ROOT.rglob("*.py")
            if not SKIPPED_DIRS & set(path.relative_to(ROOT).parts[:-1])]


def client_constructions(path: Path) -> list[str]:
    """``file:line name`` of each client class called, or Kafka URL built, in ``path``."""
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = (func.id if isinstance(func, ast.Name)
                    else func.attr if isinstance(func, ast.Attribute) else "")
            if name in CLIENT_CLASSES:
                found.append(f"{where}:{node.lineno} {name}(...)")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and "kafka://" in node.value):
            found.append(f"{where}:{node.lineno} a kafka:// broker URL")
    return found


def test_no_kafka_client_is_built_outside_the_factory_module() -> None:
    sources = library_sources()
    assert ROOT / "fraudstream" / "kafka_clients.py" in sources
    assert ROOT / "workers" / "app.py" in sources
    outside = [hit for path in sources if path.name != "kafka_clients.py"
               or path.parent.name != "fraudstream" for hit in client_constructions(path)]
    assert outside == [], ("build Kafka clients with fraudstream.kafka_clients, so that "
                           f"every connection setting reaches them: {outside}")


#: Logging calls may name the bootstrap servers: they only report it.
LOG_CALLS = {"debug", "info", "warning", "error", "exception"}
#: Call sites allowed to hand a client a bootstrap string instead of the settings (a string
#: carries no security options): none.
BOOTSTRAP_STRING_SITES: set[str] = set()


def bootstrap_string_calls(path: Path) -> list[str]:
    """``file name`` of each call that passes ``<x>.kafka_bootstrap`` as an argument."""
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (func.id if isinstance(func, ast.Name)
                else func.attr if isinstance(func, ast.Attribute) else "")
        arguments = [*node.args, *(k.value for k in node.keywords)]
        if name not in LOG_CALLS and any(isinstance(a, ast.Attribute)
                                         and a.attr == "kafka_bootstrap" for a in arguments):
            found.append(f"{where} {name}")
    return found


def test_clients_get_the_settings_not_a_bootstrap_string() -> None:
    found = {hit for path in library_sources() for hit in bootstrap_string_calls(path)}
    assert found == BOOTSTRAP_STRING_SITES, (
        "pass the settings: a bootstrap string carries no security options")


def test_the_guard_sees_each_way_of_building_a_client(tmp_path: Path) -> None:
    # The guard itself must be able to fail: one file with each form it has to catch.
    sample = tmp_path / "sample_client_site.py"
    sample.write_text("import aiokafka, faust\n"
                      "a = aiokafka.AIOKafkaProducer(bootstrap_servers='x')\n"
                      "b = KafkaAdminClient(bootstrap_servers='x')\n"
                      "c = faust.App('id', broker=f'kafka://{a}')\n")
    hits = client_constructions(sample)
    assert [hit.split(" ", 1)[1] for hit in hits] == [
        "AIOKafkaProducer(...)", "KafkaAdminClient(...)", "a kafka:// broker URL"]
    passing = tmp_path / "passing_bootstrap.py"
    passing.write_text("new_producer(s.kafka_bootstrap)\nlogger.info('%s', s.kafka_bootstrap)\n"
                       "TopicReader(target=self.settings.kafka_bootstrap)\n")
    assert [hit.split(" ", 1)[1] for hit in bootstrap_string_calls(passing)] == [
        "new_producer", "TopicReader"]


def test_aio_options_put_connection_then_defaults_then_the_call_site() -> None:
    settings = Settings(bootstrap_servers="k1:9092,k2:9092")
    assert kafka_clients.aio_options(settings, client_id="reader", linger_ms=5) == {
        "bootstrap_servers": "k1:9092,k2:9092", "client_id": "reader", "linger_ms": 5}
    assert kafka_clients.aio_options("h:1") == {"bootstrap_servers": "h:1",
                                                "client_id": "fraudstream"}


def test_settings_without_bootstrap_mean_the_local_stack() -> None:
    settings = Settings(bind_host="127.0.0.2", kafka_port=25001)
    assert kafka_clients.aio_options(settings)["bootstrap_servers"] == "127.0.0.2:25001"


def test_sync_options_bound_the_connect_wait_unless_the_site_says_otherwise() -> None:
    assert kafka_clients.sync_options("h:1", request_timeout_ms=5000) == {
        "bootstrap_servers": "h:1", "client_id": "fraudstream",
        "bootstrap_timeout_ms": 5000, "request_timeout_ms": 5000}
    assert kafka_clients.sync_options("h:1", bootstrap_timeout_ms=60_000)[
        "bootstrap_timeout_ms"] == 60_000


def test_a_call_site_cannot_replace_the_connection_options() -> None:
    with pytest.raises(TypeError, match="bootstrap_servers"):
        kafka_clients.aio_options("h:1", bootstrap_servers="elsewhere:9092")
    with pytest.raises(TypeError, match="bootstrap_servers"):
        kafka_clients.sync_options("h:1", bootstrap_servers="elsewhere:9092")


def test_faust_gets_one_url_per_bootstrap_server() -> None:
    assert kafka_clients.faust_broker_settings("a:1,b:2") == {
        "broker": ["kafka://a:1", "kafka://b:2"]}


class Recorder:
    """Stands in for a client class: keeps what the factory passed it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args = args
        self.kwargs = kwargs


@pytest.mark.parametrize(("factory", "module", "cls", "extra"), [
    (kafka_clients.aio_consumer, "aiokafka", "AIOKafkaConsumer", {}),
    (kafka_clients.aio_producer, "aiokafka", "AIOKafkaProducer", {}),
    (kafka_clients.admin, "kafka", "KafkaAdminClient", {"bootstrap_timeout_ms": 5000}),
    # Without a group, no auto-commit (kafka-python warned about each such consumer).
    (kafka_clients.sync_consumer, "kafka", "KafkaConsumer", {"bootstrap_timeout_ms": 5000,
                                                             "enable_auto_commit": False}),
    (kafka_clients.sync_producer, "kafka", "KafkaProducer", {"bootstrap_timeout_ms": 5000}),
])
def test_each_factory_builds_its_class_with_the_merged_options(
        monkeypatch: pytest.MonkeyPatch, factory: Any, module: str, cls: str,
        extra: dict[str, Any]) -> None:
    monkeypatch.setattr(importlib.import_module(module), cls, Recorder)
    client = factory(Settings(bootstrap_servers="k:1"), client_id="site", linger_ms=7)
    assert isinstance(client, Recorder)
    assert client.args == ()
    assert client.kwargs == {"bootstrap_servers": "k:1", "client_id": "site", "linger_ms": 7,
                             **extra}


def test_consumer_factories_pass_topics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.import_module("aiokafka"), "AIOKafkaConsumer", Recorder)
    monkeypatch.setattr(importlib.import_module("kafka"), "KafkaConsumer", Recorder)
    for factory in (kafka_clients.aio_consumer, kafka_clients.sync_consumer):
        client = factory("k:1", "a", "b", group_id="g")
        assert isinstance(client, Recorder)
        assert client.args == ("a", "b")
        assert client.kwargs["group_id"] == "g"


def test_aio_factories_build_real_clients_without_connecting() -> None:
    async def build() -> None:
        consumer = kafka_clients.aio_consumer("127.0.0.1:1", "topic-a", client_id="c")
        producer = kafka_clients.aio_producer("127.0.0.1:1", linger_ms=7)
        assert consumer.subscription() == {"topic-a"}
        await consumer.stop()
        await producer.stop()

    asyncio.run(build())


def test_connection_failures_are_recognised_through_wrapping_errors() -> None:
    from aiokafka.errors import KafkaConnectionError, RequestTimedOutError
    from kafka.errors import KafkaConnectionError as SyncConnectionError
    from kafka.errors import KafkaTimeoutError

    assert kafka_clients.is_unreachable(KafkaConnectionError("Unable to bootstrap from x"))
    assert kafka_clients.is_unreachable(SyncConnectionError("refused"))
    assert kafka_clients.is_unreachable(KafkaTimeoutError("Unable to bootstrap from h:1"))
    try:
        try:
            raise KafkaConnectionError("refused")
        except KafkaConnectionError as exc:
            raise RuntimeError("while tailing") from exc
    except RuntimeError as wrapped:
        assert kafka_clients.is_unreachable(wrapped)
    assert not kafka_clients.is_unreachable(KafkaTimeoutError("batch expired"))
    assert not kafka_clients.is_unreachable(RequestTimedOutError())
    assert not kafka_clients.is_unreachable(ValueError("x"))


def test_a_silent_address_fails_the_start_within_the_bound() -> None:
    from aiokafka.errors import KafkaConnectionError

    # Listening but never answering: aiokafka alone would wait its request timeout (40 s).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        bootstrap = f"127.0.0.1:{silent.getsockname()[1]}"

        async def start() -> float:
            consumer = kafka_clients.aio_consumer(bootstrap)
            started = time.monotonic()
            with pytest.raises(KafkaConnectionError, match=r"within 0\.5 s"):
                await kafka_clients.start_bounded(consumer, timeout_s=0.5)
            return time.monotonic() - started

        elapsed = asyncio.run(start())
    assert elapsed < 5.0
    assert kafka_clients.is_unreachable(KafkaConnectionError("no Kafka broker answered"))
