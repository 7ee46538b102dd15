"""Model updates on the compacted ``model-updates`` topic: one record per alias, latest wins.

A promotion or rollback publishes ``{"alias", "version", "generation", "published_at"}`` keyed
by the alias; compaction keeps the newest record per alias, so a worker that starts later
still learns what every alias points at. The record only names a version: workers fetch and
verify its bytes from the registry's stores themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fraudstream import contracts
from fraudstream.model_registry.errors import StoreUnavailable

if TYPE_CHECKING:
    from fraudstream.settings import Settings

PUBLISH_TIMEOUT_S = 15.0
#: A real update is ~150 bytes; anything much larger was not written by the registry.
MAX_UPDATE_BYTES = 4096


@dataclass(frozen=True)
class ModelUpdate:
    """An alias now points at a version."""

    alias: str
    version: str
    generation: int
    published_at: str = ""

    def key(self) -> bytes:
        return self.alias.encode()

    def to_bytes(self) -> bytes:
        body: contracts.ModelUpdate = {
            "alias": self.alias, "version": self.version, "generation": self.generation,
            "published_at": self.published_at or datetime.now(UTC).isoformat(
                timespec="milliseconds")}
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> ModelUpdate | None:
        """The update a record holds, or None for a malformed one.

        Anyone can write to the topic: whatever a record holds (deep nesting, a huge body,
        wrong types) must come back as None, never as an exception that stops the consumer
        (which would then re-read the same record from the start of the topic, forever).
        """
        if data is None or len(data) > MAX_UPDATE_BYTES:
            return None
        try:
            body = json.loads(data)
            alias, version = body["alias"], body["version"]
            generation = body.get("generation", 0)
            published_at = body.get("published_at", "")
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return None
        if not (isinstance(alias, str) and isinstance(version, str) and alias and version
                and isinstance(generation, int) and isinstance(published_at, str)
                and len(alias) <= 64 and len(version) <= 256):
            return None
        return cls(alias=alias, version=version, generation=generation,
                   published_at=published_at[:64])


def publish_update(target: Settings | str, topic: str, update: ModelUpdate) -> None:
    """Send ``update`` and wait until Kafka has it (blocking; for the CLI).

    ``target``: the settings (they carry every connection option), or a bootstrap string.
    """
    from kafka.errors import KafkaError

    from fraudstream import kafka_clients

    bootstrap = kafka_clients.bootstrap_of(target)
    try:
        producer = kafka_clients.sync_producer(target, acks="all",
                                               client_id="fraudstream-registry",
                                               request_timeout_ms=int(PUBLISH_TIMEOUT_S * 1000),
                                               max_block_ms=int(PUBLISH_TIMEOUT_S * 1000))
    except KafkaError as exc:
        raise StoreUnavailable(f"Kafka at {bootstrap} unreachable; the promotion is recorded "
                               f"but not announced ({exc}); publish it again with the same "
                               "command") from exc
    try:
        producer.send(topic, update.to_bytes(), key=update.key()).get(PUBLISH_TIMEOUT_S)
    except KafkaError as exc:
        raise StoreUnavailable(f"the update was not published to {topic} ({exc}); the "
                               "promotion is recorded, run the command again") from exc
    finally:
        producer.close(timeout=5)
