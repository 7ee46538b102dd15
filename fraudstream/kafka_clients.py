"""Every Kafka client of the system is built here, from one set of connection options.

Three libraries talk to Kafka: aiokafka (workers, tailing, producing), kafka-python (admin
calls and the blocking clients of the supervisor and the registry) and Faust (the scoring
app, through its broker settings). A connection setting (where Kafka is, and how to
authenticate: security protocol, SASL, TLS) goes into ``connection_options`` once and so
reaches every client; a call site only adds what is particular to it (``client_id``, batching,
isolation level). ``tests/unit/test_kafka_clients.py`` fails when a client is built elsewhere.
The libraries spell security differently (aiokafka and kafka-python take keyword arguments,
Faust a credentials object), so each gets its own rendering of the same settings, and one
``ssl_context`` serves all three.

The libraries are imported inside the factories: importing this module stays cheap, so the
command line starts fast.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraudstream.settings import (
    ENV_PREFIX,
    KAFKA_SASL_PROTOCOLS,
    KAFKA_TLS_PROTOCOLS,
    SettingsError,
)

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.client import AIOKafkaClient
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
    """Keyword arguments every aiokafka and kafka-python client gets: how to reach Kafka and
    how to authenticate (both libraries take the same names, ``ssl_context`` included).

    A bare bootstrap string means PLAINTEXT (the local stack's launcher uses one).

    Raises:
        SettingsError: a TLS file named by the settings cannot be read.
    """
    options: dict[str, Any] = {"bootstrap_servers": bootstrap_of(target)}
    if isinstance(target, str) or target.kafka_security_protocol == "PLAINTEXT":
        return options
    options["security_protocol"] = target.kafka_security_protocol
    if target.kafka_security_protocol in KAFKA_SASL_PROTOCOLS:
        options.update(sasl_mechanism=target.kafka_sasl_mechanism,
                       sasl_plain_username=target.kafka_sasl_username,
                       sasl_plain_password=target.kafka_sasl_password)
    if target.kafka_security_protocol in KAFKA_TLS_PROTOCOLS:
        options["ssl_context"] = ssl_context(target)
    return options


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of every client: verifies brokers against the CA file (or the system's
    CAs), presents the client certificate when one is set, checks host names unless told not.

    Raises:
        SettingsError: a file is missing or not a usable PEM file (said with its variable).
    """
    from aiokafka.helpers import create_ssl_context

    files = {"cafile": settings.kafka_ssl_cafile, "certfile": settings.kafka_ssl_certfile,
             "keyfile": settings.kafka_ssl_keyfile}
    for name, path in files.items():
        if path and not Path(path).is_file():
            raise SettingsError(f"{ENV_PREFIX}KAFKA_SSL_{name.upper()}={path}: no such file")
    try:
        context = create_ssl_context(**{name: path or None for name, path in files.items()})
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(f"the Kafka TLS files ({', '.join(p for p in files.values() if p)}) "
                            f"are not usable PEM certificates/keys: {exc}") from exc
    # aiokafka's helper always checks host names; a cluster whose certificates do not name
    # the advertised hosts needs it off (the CA is still verified).
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


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


def aio_client(target: Settings | str, **overrides: Any) -> AIOKafkaClient:
    """A bare aiokafka client (not bootstrapped), for requests aiokafka's consumer and
    producer do not make (``workers.stable_offsets``)."""
    from aiokafka.client import AIOKafkaClient

    return AIOKafkaClient(**aio_options(target, **overrides))


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
    """A kafka-python consumer, connected, subscribed to ``topics`` if any. Without a group
    it commits nothing (kafka-python warned "group_id is None: disabling auto-commit" for each
    one, in every demo)."""
    from kafka import KafkaConsumer

    if overrides.get("group_id") is None:
        overrides.setdefault("enable_auto_commit", False)
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
    """The connection part of a Faust app's configuration (``faust.App(id, **these, ...)``):
    the broker URLs and, on a secured cluster, ``broker_credentials``, which Faust turns into
    the same aiokafka options for each of its clients (consumer, producers, topic creation).
    """
    settings: dict[str, Any] = {
        "broker": [f"kafka://{server}" for server in bootstrap_of(target).split(",")]}
    credentials = faust_credentials(target)
    if credentials is not None:
        settings["broker_credentials"] = credentials
    return settings


def faust_credentials(target: Settings | str) -> Any:
    """A ``faust.SASLCredentials`` / ``faust.SSLCredentials`` for the settings, or None."""
    if isinstance(target, str) or target.kafka_security_protocol == "PLAINTEXT":
        return None
    import faust

    protocol = target.kafka_security_protocol
    context = ssl_context(target) if protocol in KAFKA_TLS_PROTOCOLS else None
    if protocol in KAFKA_SASL_PROTOCOLS:
        # The protocol follows the context: SASL_SSL with one, SASL_PLAINTEXT without.
        return faust.SASLCredentials(username=target.kafka_sasl_username,
                                     password=target.kafka_sasl_password,
                                     mechanism=target.kafka_sasl_mechanism,
                                     ssl_context=context)
    return faust.SSLCredentials(context)


def connection_problem(target: Settings | str,
                       timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why the first bootstrap server turns this client away, when TLS or SASL is the reason.

    Both libraries report a refused login or an untrusted certificate as a failed bootstrap,
    which reads like "Kafka is down"; one direct connection with the same options tells them
    apart. None when the security settings are not the problem (or none are set).
    """
    if isinstance(target, str) or target.kafka_security_protocol == "PLAINTEXT":
        return None
    return asyncio.run(_probe(target, timeout_s))


async def _probe(settings: Settings, timeout_s: float) -> str | None:
    from aiokafka import errors
    from aiokafka.conn import create_conn

    options = connection_options(settings)
    server = str(options.pop("bootstrap_servers")).split(",")[0].strip()
    host, _, port = server.rpartition(":")
    where = f"Kafka at {server}"
    try:
        async with asyncio.timeout(timeout_s):
            conn = await create_conn(host.strip("[]"), int(port), client_id=DEFAULT_CLIENT_ID,
                                     request_timeout_ms=int(timeout_s * 1000), **options)
        conn.close()
    except (errors.SaslAuthenticationFailed, errors.AuthenticationFailedError,
            errors.UnsupportedSaslMechanismError, errors.IllegalSaslStateError) as exc:
        return (f"{where} refused user {settings.kafka_sasl_username!r} "
                f"({settings.kafka_sasl_mechanism} over {settings.kafka_security_protocol}): "
                f"{_first_line(exc)}; check {ENV_PREFIX}KAFKA_SASL_USERNAME, "
                f"{ENV_PREFIX}KAFKA_SASL_PASSWORD and {ENV_PREFIX}KAFKA_SASL_MECHANISM")
    except ssl.SSLCertVerificationError as exc:
        return (f"{where}: its TLS certificate is not trusted ({exc.verify_message}); set "
                f"{ENV_PREFIX}KAFKA_SSL_CAFILE to the CA that signed it")
    except ssl.SSLError as exc:
        return (f"{where}: the TLS handshake failed ({exc.reason or exc}); is "
                f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} "
                "what this listener speaks?")
    except Exception:  # refused, silent (TimeoutError), or accepted after all: not security
        return None
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


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
