"""Every Kafka client of the system is built here, from one set of connection options.

Three libraries talk to Kafka: aiokafka (workers, tailing, producing), kafka-python (admin
calls and the blocking clients of the supervisor and the registry) and Faust (the scoring
app, through its broker settings). A connection setting (where Kafka is, and later how to
authenticate: security protocol, SASL, TLS) goes into ``connection_options`` once and so
reaches every client; a call site only adds what is particular to it (``client_id``, batching,
isolation level). ``tests/unit/test_kafka_clients.py`` fails when a client is built elsewhere.

The libraries are imported inside the factories: importing this module stays cheap, so the
command line starts fast.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    from fraudstream.settings import Settings

#: How long a client waits for its first broker before it gives up. kafka-python's own default
#: is 30 s, aiokafka's is its request timeout (30-40 s) when an address is silent (a refused
#: connection fails at once); a command saying "Kafka is down" should not take that long, and
#: the supervisor's loop should not stall for it either.
CONNECT_TIMEOUT_S = 5.0

#: Sent when a call site names no client id, so brokers' logs say who connected.
DEFAULT_CLIENT_ID = "fraudstream"

#: The exceptions that mean "no broker could be reached at all" (module, class name), looked
#: up by name so that classifying an error never imports a Kafka library.
_UNREACHABLE = (("aiokafka.errors", "KafkaConnectionError"),
                ("kafka.errors", "KafkaConnectionError"),
                ("kafka.errors", "NoBrokersAvailable"))  # kafka-python 2.x
#: kafka-python raises its generic timeout when bootstrapping fails; only that case counts.
_BOOTSTRAP_TIMEOUT = ("kafka.errors", "KafkaTimeoutError", "bootstrap")


def bootstrap_of(target: Settings | str) -> str:
    """The bootstrap servers (``host:port,...``) of ``target``."""
    return target if isinstance(target, str) else target.kafka_bootstrap


def connection_options(target: Settings | str) -> dict[str, Any]:
    """Keyword arguments every aiokafka and kafka-python client gets: how to reach Kafka.

    Security settings (issue 14) belong here too, so that no client can miss them.
    """
    return {"bootstrap_servers": bootstrap_of(target)}


def merged_options(target: Settings | str, defaults: Mapping[str, Any],
                   overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Connection options, then the client kind's ``defaults``, then the call site's
    ``overrides``; a call site may not replace a connection option.

    Raises:
        TypeError: an override names a connection option (it would bypass the settings).
    """
    connection = connection_options(target)
    clash = sorted(set(overrides) & set(connection))
    if clash:
        raise TypeError(f"connection options come from the settings, not the call site: "
                        f"{', '.join(clash)}")
    return {**connection, "client_id": DEFAULT_CLIENT_ID, **defaults, **overrides}


def aio_options(target: Settings | str, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of an aiokafka client built for ``target``."""
    return merged_options(target, {}, overrides)


def sync_options(target: Settings | str, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of a kafka-python client built for ``target``.

    kafka-python connects in the constructor; ``bootstrap_timeout_ms`` bounds that wait.
    """
    return merged_options(target, {"bootstrap_timeout_ms": int(CONNECT_TIMEOUT_S * 1000)},
                          overrides)


def aio_consumer(target: Settings | str, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer (not started) subscribed to ``topics``, if any."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, **aio_options(target, **overrides))


def aio_producer(target: Settings | str, **overrides: Any) -> AIOKafkaProducer:
    """An aiokafka producer (not started)."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(**aio_options(target, **overrides))


def admin(target: Settings | str, **overrides: Any) -> KafkaAdminClient:
    """A kafka-python admin client, connected (it bootstraps in its constructor).

    Raises:
        kafka.errors.KafkaError: no broker answered within ``CONNECT_TIMEOUT_S`` (see
            ``is_unreachable``).
    """
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**sync_options(target, **overrides))


def sync_consumer(target: Settings | str, *topics: str, **overrides: Any) -> KafkaConsumer:
    """A kafka-python consumer, connected, subscribed to ``topics`` if any."""
    from kafka import KafkaConsumer

    return KafkaConsumer(*topics, **sync_options(target, **overrides))


def sync_producer(target: Settings | str, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer, connected."""
    from kafka import KafkaProducer

    return KafkaProducer(**sync_options(target, **overrides))


async def start_bounded(client: AIOKafkaConsumer | AIOKafkaProducer,
                        timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Start an aiokafka client; when it is not connected within ``timeout_s``, close it and
    raise aiokafka's ``KafkaConnectionError``, as a refused connection does at once.
    """
    from aiokafka.errors import KafkaConnectionError

    try:
        async with asyncio.timeout(timeout_s):
            await client.start()
    except TimeoutError as exc:
        await client.stop()
        raise KafkaConnectionError(f"no Kafka broker answered within {timeout_s:g} s") from exc


def faust_broker_settings(target: Settings | str) -> dict[str, Any]:
    """The connection part of a Faust app's configuration (``faust.App(id, **these, ...)``)."""
    return {"broker": [f"kafka://{server}" for server in bootstrap_of(target).split(",")]}


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) says no Kafka broker could be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_connection_failure(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_connection_failure(exc: BaseException) -> bool:
    for module_name, class_name in _UNREACHABLE:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if cls is not None and isinstance(exc, cls):
            return True
    module_name, class_name, marker = _BOOTSTRAP_TIMEOUT
    cls = getattr(sys.modules.get(module_name), class_name, None)
    return cls is not None and isinstance(exc, cls) and marker in str(exc).lower()
