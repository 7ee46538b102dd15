"""A model store on Kafka itself: every host that reaches Kafka reaches the models.

``kafka:`` (the topic ``FRAUDSTREAM_TOPIC_MODEL_STORE``) or ``kafka:<topic>`` in
``FRAUDSTREAM_MODEL_STORES``. The topic has one partition and is compacted: each key's newest
record is its value, a tombstone deletes it. It is created on first use with
``max.message.bytes`` sized for models (``MAX_RECORD_BYTES``; a model over it is refused with
its size, never cut). The Kafka connection (bootstrap, SASL, TLS) is the settings' own, as for
every other client (``kafka_clients``). Like the other stores it is trusted with nothing: the
registry verifies every copy it reads (SHA-256 and HMAC).

Reading: the store follows the topic from where it last stopped to its end at the time of the
call and keeps each key's newest offset (small values, such as the registry state and
manifests, are kept in memory as read); a large value is read again at its offset when asked
for. A write waits for every in-sync replica (``acks=all``) and is then visible to this store
at once and to every other one from its next read.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from fraudstream import kafka_clients
from fraudstream.model_registry.errors import InvalidRequest, StoreUnavailable
from fraudstream.redaction import redact_text

if TYPE_CHECKING:
    from fraudstream.settings import Settings

#: The largest value the store writes (a model artifact; the hgb model is about 1.2 MB). The
#: topic's ``max.message.bytes`` and the clients' request and fetch sizes follow it.
MAX_RECORD_BYTES = 32 * 1024 * 1024
#: Room for the record's key and framing around a value of MAX_RECORD_BYTES.
RECORD_OVERHEAD_BYTES = 64 * 1024
#: Values up to this size are kept in memory as they are read (state, manifests).
SMALL_VALUE_BYTES = 64 * 1024
#: One poll's wait while catching up.
POLL_MS = 500
#: Longest wait for Kafka in one call: a store that does not answer is skipped for another.
TIMEOUT_S = 10.0


class KafkaStore:
    """Blobs as the newest record per key of a compacted one-partition topic."""

    scheme = "kafka"

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.uri = f"kafka:{topic}"
        self._lock = threading.Lock()
        self._producer: Any = None
        self._consumer: Any = None
        #: Key -> (offset, value if small) of its newest record; absent: no value.
        self._index: dict[str, tuple[int, bytes | None]] = {}
        #: The next offset to read into the index.
        self._position = 0

    # --- the ArtifactStore protocol ------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        with self._lock:
            self._catch_up(f"reading {key}")
            found = self._index.get(key)
            if found is None:
                return None
            offset, value = found
            return value if value is not None else self._read_at(offset, key)

    def put(self, key: str, data: bytes) -> None:
        if len(data) > MAX_RECORD_BYTES:
            raise InvalidRequest(f"{self.uri}: {key} is {len(data):,} bytes, over the Kafka "
                                 f"store's {MAX_RECORD_BYTES:,}-byte record limit; keep such "
                                 "models in a file or Redis store")
        with self._lock:
            offset = self._send(key, data, f"writing {key}")
            self._index[key] = (offset, data if len(data) <= SMALL_VALUE_BYTES else None)

    def delete(self, key: str) -> None:
        with self._lock:
            self._send(key, None, f"deleting {key}")
            self._index.pop(key, None)

    def ping(self) -> None:
        with self._lock:
            self._end_offset("ping")

    def close(self) -> None:
        """Release the Kafka clients (a later call connects again)."""
        with self._lock:
            producer, consumer = self._producer, self._consumer
            self._producer = self._consumer = None
            if producer is not None:
                producer.close(timeout=TIMEOUT_S)
            if consumer is not None:
                consumer.close()

    # --- Kafka -----------------------------------------------------------------------------

    def _fail(self, what: str, exc: BaseException) -> StoreUnavailable:
        text, name = redact_text(str(exc)), type(exc).__name__
        if not text.startswith(name):  # kafka-python's own messages start with it
            text = f"{name}: {text}"
        return StoreUnavailable(f"{self.uri}: {what} failed ({text}; is Kafka reachable at "
                                f"{self.settings.kafka_bootstrap}?)")

    def _tp(self) -> Any:
        from kafka import TopicPartition

        return TopicPartition(self.topic, 0)

    def _connect(self, what: str) -> None:
        """Create the topic if it is missing, then the producer and the reading consumer."""
        if self._consumer is not None:
            return
        from kafka.errors import KafkaError

        size = MAX_RECORD_BYTES + RECORD_OVERHEAD_BYTES
        try:
            self._ensure_topic()
            producer = kafka_clients.sync_producer(
                self.settings, acks="all", max_request_size=size,
                request_timeout_ms=int(TIMEOUT_S * 1000),
                client_id="fraudstream-model-store")
            try:
                consumer = kafka_clients.sync_consumer(
                    self.settings, group_id=None, enable_auto_commit=False,
                    max_partition_fetch_bytes=size, fetch_max_bytes=size,
                    request_timeout_ms=int(TIMEOUT_S * 1000) + 1000,
                    client_id="fraudstream-model-store")
            except BaseException:
                producer.close(timeout=1)
                raise
        except KafkaError as exc:
            raise self._fail(what, exc) from exc
        consumer.assign([self._tp()])
        self._producer, self._consumer = producer, consumer

    def _ensure_topic(self) -> None:
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = kafka_clients.admin(self.settings, client_id="fraudstream-model-store")
        try:
            if self.topic in admin.list_topics():
                return
            rf = self.settings.replication_factor
            configs = {"cleanup.policy": "compact",
                       "max.message.bytes": str(MAX_RECORD_BYTES + RECORD_OVERHEAD_BYTES)}
            if rf >= 3:
                configs["min.insync.replicas"] = "2"
            # Another host may create it meanwhile.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(self.topic, 1, rf, topic_configs=configs)])
        finally:
            admin.close()

    def _send(self, key: str, value: bytes | None, what: str) -> int:
        from kafka.errors import KafkaError

        self._connect(what)
        try:
            sent = self._producer.send(self.topic, key=key.encode(), value=value, partition=0)
            return int(sent.get(timeout=TIMEOUT_S).offset)
        except KafkaError as exc:
            raise self._fail(what, exc) from exc

    def _end_offset(self, what: str) -> int:
        from kafka.errors import KafkaError

        self._connect(what)
        tp = self._tp()
        try:
            return int(self._consumer.end_offsets([tp])[tp])
        except KafkaError as exc:
            raise self._fail(what, exc) from exc

    def _catch_up(self, what: str) -> None:
        """Read the topic from ``_position`` to its end now into the index."""
        from kafka.errors import KafkaError

        end = self._end_offset(what)
        if self._position >= end:
            return
        tp = self._tp()
        try:
            self._consumer.seek(tp, self._position)
            deadline = time.monotonic() + TIMEOUT_S
            while self._position < end:
                polled = self._consumer.poll(timeout_ms=POLL_MS)
                for record in polled.get(tp, []):
                    self._index_record(record)
                # Compaction leaves gaps: the consumer's position, not the records, says how
                # far the read has come.
                position = self._consumer.position(tp)
                if position > self._position:
                    self._position, deadline = position, time.monotonic() + TIMEOUT_S
                elif time.monotonic() > deadline:
                    raise StoreUnavailable(f"{self.uri}: {what} failed (nothing read past "
                                           f"offset {self._position} of {end} within "
                                           f"{TIMEOUT_S:g} s)")
        except KafkaError as exc:
            raise self._fail(what, exc) from exc

    def _index_record(self, record: Any) -> None:
        if record.key is None:
            return
        key = record.key.decode(errors="replace")
        if record.value is None:
            self._index.pop(key, None)
        else:
            small = len(record.value) <= SMALL_VALUE_BYTES
            self._index[key] = (record.offset, bytes(record.value) if small else None)

    def _read_at(self, offset: int, key: str) -> bytes | None:
        """The value of the record at ``offset`` (the newest of ``key``), read again."""
        from kafka.errors import KafkaError

        tp = self._tp()
        try:
            self._consumer.seek(tp, offset)
            polled = self._consumer.poll(timeout_ms=int(TIMEOUT_S * 1000), max_records=1)
        except KafkaError as exc:
            raise self._fail(f"reading {key}", exc) from exc
        for record in polled.get(tp, []):
            if record.offset == offset and record.key == key.encode():
                return None if record.value is None else bytes(record.value)
        raise StoreUnavailable(f"{self.uri}: reading {key} failed (its record at offset "
                               f"{offset} was not returned)")
