"""One settings object per program, built from the environment in ``main()`` and passed down."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fraudstream.loopback import names_loopback
from fraudstream.redaction import redact_url

ENV_PREFIX = "FRAUDSTREAM_"
#: Fields holding secrets: hidden in repr.
SECRET_FIELDS = ("signing_key", "api_token", "redis_password", "kafka_sasl_password")
#: The secrets this system's operators choose, refused when shorter than MIN_SECRET_BYTES (a
#: short HMAC key or token falls to guessing). A Kafka password is the cluster's to choose.
CHOSEN_SECRET_FIELDS = ("signing_key", "api_token", "redis_password")
MIN_SECRET_BYTES = 16
#: Fields holding URLs that may embed credentials (shown redacted).
URL_FIELDS = ("bootstrap_servers", "prometheus_url", "redis_url", "model_stores")
#: The file ``fraudstream stack up`` keeps the local Redis password in, under the state dir.
REDIS_PASSWORD_FILE = "redis.password"
#: The signing key the demo, bench and chaos runs create in the state dir when none is set.
SIGNING_KEY_FILE = "signing.key"


#: The longest batch window a setting may ask for: beyond it a hop would hold its records
#: longer than the supervisor lets a partition go without a commit.
MAX_BATCH_WINDOW_S = 10.0
#: The TCP ports a server may listen on (0 would mean "any free port", never what is meant).
MIN_PORT, MAX_PORT = 1, 65535
#: The most active workers one app runs: worker N serves on the first web port + N, so slot
#: 99 would take the port of a chaos run's supervisor (the app's supervisor port + 100, by
#: default the web port + 99; ``chaos.ports``). Standbys take a slot's port only with it.
MAX_WORKERS = 98


class SettingsError(ValueError):
    """An environment variable holds a value the program cannot use."""


#: The card table's stores (FRAUDSTREAM_TABLE_STORE).
TABLE_STORES = ("rocksdb", "memory")
#: How a worker's outputs are committed (FRAUDSTREAM_PROCESSING_GUARANTEE).
PROCESSING_GUARANTEES = ("exactly_once", "at_least_once")
#: Kafka's security protocols (FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL), and those using SASL/TLS.
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
KAFKA_TLS_PROTOCOLS = ("SSL", "SASL_SSL")
#: The SASL mechanisms every client library of the system supports with a username/password.
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class Settings:
    """Every knob of the system; each field is read from ``FRAUDSTREAM_<FIELD>`` (upper case)."""

    #: Kafka bootstrap servers. Defaults to the local stack's first broker.
    bootstrap_servers: str = ""
    #: How every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    kafka_security_protocol: str = "PLAINTEXT"
    #: SASL (with SASL_* protocols): mechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, and the
    #: user's name and password.
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    #: TLS (with SSL and SASL_SSL): the CA file that signed the brokers' certificates (empty:
    #: the system's CAs), and a client certificate and key for mutual TLS (PEM files).
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
    #: Check that a broker's certificate names the host the client dialled.
    kafka_ssl_check_hostname: bool = True
    #: Folder holding the local stack's data, logs and pid files (git-ignored).
    state_dir: Path = Path(".stack")
    #: Host every local server binds to. Loopback unless you mean otherwise.
    bind_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_nodes: int = 1
    kafka_heap_mb: int = 384
    redis_port: int = 6379
    prometheus_port: int = 9090
    #: Prometheus HTTP API the dashboard reads; empty = the local stack's (bind host, port).
    prometheus_url: str = ""
    alertmanager_port: int = 9093
    #: Topic names (contracts in README.md).
    topic_transactions: str = "transactions"
    topic_scores: str = "scores"
    topic_dlq: str = "transactions.dlq"
    topic_labels: str = "labels"
    topic_model_updates: str = "model-updates"
    #: The model store on Kafka (``kafka:`` in model_stores): compacted, one partition.
    topic_model_store: str = "model-store"
    #: Operational events (failovers) published by the supervisor.
    topic_events: str = "fraudstream.events"
    partitions: int = 4
    replication_factor: int = 1
    #: Faust application id (the consumer group of the scoring workers).
    app_id: str = "fraudstream-scoring"
    #: First web port of the workers; worker N listens on worker_web_port + N.
    worker_web_port: int = 6066
    #: The supervisor's /metrics port.
    supervisor_port: int = 6065
    #: The model artifact the workers serve (its signed manifest sits next to it).
    model_path: Path = Path("artifacts/models/current.skops")
    #: HMAC key that signs and verifies model artifacts. Required to train or serve.
    signing_key: str = ""
    #: Micro-batching of the scoring agent.
    batch_size: int = 500
    batch_window_s: float = 0.02
    #: How long each hop of the label path waits for more labels before its batch (one Kafka
    #: transaction per partition and hop): labels count only days later, so seconds do not
    #: matter, while shorter windows mean more transactions (0.1 s measured: more CPU).
    label_batch_window_s: float = 1.0
    #: Largest accepted transaction record, in bytes; larger ones are dead-lettered. Every
    #: output (score, dead letter, changelog record) is kept within it too.
    max_message_bytes: int = 65536
    #: How far (seconds) a transaction's or label's time may be ahead of the worker's clock;
    #: later ones are dead-lettered as bad_timestamp (they would evict a card's history).
    max_clock_skew_s: float = 300.0
    #: Standby replicas of each feature-table partition kept warm on other workers. 0 by
    #: default: measured, one standby cut two workers' throughput from ~4,000 to ~550 tx/s,
    #: and recovery replays the compacted changelog instead.
    table_standby_replicas: int = 0
    #: Where each worker keeps its card table: ``rocksdb`` (on local disk under
    #: FRAUDSTREAM_STATE_DIR/faust/<app id>/worker-<slot>; a restarted worker reads only the
    #: changelog's tail) or ``memory`` (replays the whole changelog on every assignment).
    table_store: str = "rocksdb"
    #: ``exactly_once``: each input partition's outputs (scores, dead letters, card changelog)
    #: and its consumed offset are one Kafka transaction, fenced per partition: a worker that
    #: lost its partitions (paused, cut off, orphaned) can no longer write for them.
    #: ``at_least_once``: plain idempotent writes, duplicates after a takeover are found by
    #: reading the outputs back (workers.takeover); only for comparison in the benchmark.
    processing_guarantee: str = "exactly_once"
    #: A card with no transaction for this many days (in event time) is removed from the
    #: card table with a tombstone (its changelog shrinks too); 0 keeps every card forever.
    card_idle_days: float = 31.0
    #: The HTTP API (``fraudstream api``): port, and the bearer token its mutating endpoints
    #: require (unset = mutations refused).
    api_port: int = 8000
    api_token: str = ""
    #: Accept the Alertmanager webhook from a loopback address without the token (the local
    #: stack's Alertmanager sends none). Off where loopback is shared with processes you do
    #: not trust, or to make a local Alertmanager prove its token (the compose deployment).
    api_trust_loopback: bool = True
    #: Redis, for caches and replicated model artifacts.
    redis_url: str = ""
    #: The local Redis' password (its ``requirepass``); empty: the one ``fraudstream stack
    #: up`` generated into FRAUDSTREAM_STATE_DIR/redis.password. Used when redis_url is empty.
    redis_password: str = ""
    #: Label delay in days used by the merchant-risk features (the Handbook's 7 days).
    label_delay_days: int = 7
    #: Model registry stores, comma-separated URIs (file:///path, redis://host:port/db,
    #: kafka:[topic]).
    #: Empty: a file store under the state dir plus Redis (FRAUDSTREAM_REDIS_URL or local).
    model_stores: str = ""
    #: Longest a model may take on one batch before a fallback answers it instead.
    model_timeout_s: float = 1.0
    #: 1 enables the chaos hooks on a worker's (loopback) web port: POST /chaos/model (slow or
    #: break its model), /chaos/features (NaN features), /chaos/delivery (skip or repeat).
    chaos_hooks: int = 0
    #: Drift detection: scored rows in each worker's sliding window, and how often (seconds)
    #: the drift and live-performance gauges are recomputed from it.
    drift_window_rows: int = 20000
    monitoring_interval_s: float = 5.0
    #: Add each transaction's feature values to its score record (off: it doubles the record;
    #: the feature-parity test and debugging turn it on).
    emit_features: bool = False

    def __post_init__(self) -> None:
        if self.table_store not in TABLE_STORES:
            raise SettingsError(f"{ENV_PREFIX}TABLE_STORE is {self.table_store!r}; use one of "
                                f"{', '.join(TABLE_STORES)}")
        if self.processing_guarantee not in PROCESSING_GUARANTEES:
            raise SettingsError(f"{ENV_PREFIX}PROCESSING_GUARANTEE is "
                                f"{self.processing_guarantee!r}; use one of "
                                f"{', '.join(PROCESSING_GUARANTEES)}")
        self._check_kafka_security()
        self._check_batching()
        self._check_ports()
        for name in CHOSEN_SECRET_FIELDS:
            value: str = getattr(self, name)
            if value and len(value.encode()) < MIN_SECRET_BYTES:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} is {len(value.encode())} "
                                    f"bytes; use at least {MIN_SECRET_BYTES} (for example "
                                    "`python -c 'import secrets; print(secrets.token_hex(32))'`)")

    def _check_batching(self) -> None:
        """Refuse batch settings that would stall a hop or make it spin."""
        if self.batch_size < 1:
            raise SettingsError(f"{ENV_PREFIX}BATCH_SIZE is {self.batch_size}; use at least 1 "
                                "(default 500)")
        for name in ("batch_window_s", "label_batch_window_s"):
            value: float = getattr(self, name)
            default = self.__dataclass_fields__[name].default
            if not 0 <= value <= MAX_BATCH_WINDOW_S:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} is {value}; use seconds from 0 "
                                    f"(take only what is waiting) to {MAX_BATCH_WINDOW_S:g} "
                                    f"(default {default:g})")

    def _check_ports(self) -> None:
        """Refuse ports no socket can use: they would fail later, as a traceback."""
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("_port") and not MIN_PORT <= value <= MAX_PORT:
                raise SettingsError(f"{ENV_PREFIX}{field.name.upper()} is {value}; use a port "
                                    f"from {MIN_PORT} to {MAX_PORT} (default {field.default})")

    def _check_kafka_security(self) -> None:
        """Refuse combinations a client would silently ignore or fail on later."""
        protocol, mechanism = self.kafka_security_protocol, self.kafka_sasl_mechanism
        if protocol not in KAFKA_SECURITY_PROTOCOLS:
            raise SettingsError(f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL is {protocol!r}; use one "
                                f"of {', '.join(KAFKA_SECURITY_PROTOCOLS)}")
        if mechanism not in KAFKA_SASL_MECHANISMS:
            raise SettingsError(f"{ENV_PREFIX}KAFKA_SASL_MECHANISM is {mechanism!r}; use one of "
                                f"{', '.join(KAFKA_SASL_MECHANISMS)}")
        credentials = [name for name in ("kafka_sasl_username", "kafka_sasl_password")
                       if getattr(self, name)]
        if protocol in KAFKA_SASL_PROTOCOLS and len(credentials) < 2:
            raise SettingsError(f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={protocol} needs "
                                f"{ENV_PREFIX}KAFKA_SASL_USERNAME and "
                                f"{ENV_PREFIX}KAFKA_SASL_PASSWORD")
        if protocol not in KAFKA_SASL_PROTOCOLS and credentials:
            raise SettingsError(f"{_env_names(credentials)} set but "
                                f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={protocol} sends no "
                                "credentials; use SASL_SSL (or SASL_PLAINTEXT)")
        tls_files = [name for name in ("kafka_ssl_cafile", "kafka_ssl_certfile",
                                       "kafka_ssl_keyfile") if getattr(self, name)]
        if protocol not in KAFKA_TLS_PROTOCOLS and tls_files:
            raise SettingsError(f"{_env_names(tls_files)} set but "
                                f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={protocol} does not use "
                                "TLS; use SSL or SASL_SSL")
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise SettingsError(f"{ENV_PREFIX}KAFKA_SSL_KEYFILE needs "
                                f"{ENV_PREFIX}KAFKA_SSL_CERTFILE (the certificate it belongs to)")

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks: secrets hidden, URLs without credentials.
        shown = []
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in SECRET_FIELDS and value:
                value = "***"
            elif field.name in URL_FIELDS and value:
                value = ",".join(redact_url(u) for u in str(value).split(","))
            shown.append(f"{field.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def beyond_loopback(self) -> bool:
        """True when the servers bind to an address other machines can reach."""
        return not names_loopback(self.bind_host)

    def exposure_warning(self, service: str) -> str | None:
        """What to log before ``service`` listens on bind_host, when that is not loopback."""
        if not self.beyond_loopback:
            return None
        return (f"{service} listens on {self.bind_host}, not loopback: anyone who can reach "
                "this address can use it (set FRAUDSTREAM_BIND_HOST=127.0.0.1, or firewall it)")

    @property
    def redis_connection_url(self) -> str:
        """The Redis to use: redis_url, or the local stack's with its password."""
        if self.redis_url:
            return self.redis_url
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.bind_host}:{self.redis_port}/0"

    @property
    def kafka_bootstrap(self) -> str:
        """The bootstrap servers to use: the configured ones, or the local stack's."""
        return self.bootstrap_servers or f"{self.bind_host}:{self.kafka_port}"

    @property
    def prometheus_base_url(self) -> str:
        """The Prometheus to query: the configured URL, or the local stack's."""
        url = self.prometheus_url or f"http://{self.bind_host}:{self.prometheus_port}"
        return url.rstrip("/")

    @property
    def model_store_uris(self) -> list[str]:
        """The registry's store URIs: the configured ones, or the local defaults."""
        if self.model_stores.strip():
            return [u.strip() for u in self.model_stores.split(",") if u.strip()]
        return [f"file://{self.state_dir.resolve() / 'registry'}", self.redis_connection_url]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``FRAUDSTREAM_*`` variables, then apply explicit overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is None or raw == "":
                continue
            values[field.name] = _convert(field.name, str(field.type), raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, type) for every setting, for ``--help`` and the README."""
        rows = []
        for field in fields(cls):
            rows.append((ENV_PREFIX + field.name.upper(), str(field.default), str(field.type)))
        return rows


def with_local_secrets(settings: Settings, create: bool = False) -> Settings:
    """``settings`` with the local stack's Redis password when none is set.

    The password lives in ``<state_dir>/redis.password`` (mode 0600); with ``create`` (the
    commands that start the local stack) it is generated there when absent, so the server
    and every client agree on it. Reads a file, so entry points call it, never constructors.
    """
    if settings.redis_password or settings.redis_url:
        return settings
    path = settings.state_dir / REDIS_PASSWORD_FILE
    try:
        if create and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another process made it meanwhile
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(24) + "\n")
        password = path.read_text().strip()
    except OSError:
        return settings
    return dataclasses.replace(settings, redis_password=password) if password else settings


def _env_names(names: list[str]) -> str:
    return " and ".join(ENV_PREFIX + name.upper() for name in names)




def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _convert(name: str, type_name: str, raw: str) -> Any:
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "Path":
            return Path(raw)
        if type_name == "bool":
            return _boolean(raw)
        return raw
    except ValueError as exc:
        raise SettingsError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {type_name}"
        ) from exc
