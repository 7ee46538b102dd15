"""Model updates on the compacted ``model-updates`` topic: one record per alias, latest wins.

A promotion or rollback publishes ``{"alias", "version", "generation", "published_at"}`` keyed
by the alias; compaction keeps the newest record per alias, so a worker that starts later
still learns what every alias points at. The record only names a version: workers fetch and
verify its bytes from the registry's stores themselves.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from model_registry.errors import StoreUnavailable

PUBLISH_TIMEOUT_S = 15.0


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
        body = asdict(self)
        body["published_at"] = self.published_at or datetime.now(UTC).isoformat(
            timespec="milliseconds")
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> ModelUpdate | None:
        """The update a record holds, or None for a malformed one."""
        try:
            body = json.loads(data or b"")
            update = cls(alias=str(body["alias"]), version=str(body["version"]),
                         generation=int(body.get("generation", 0)),
                         published_at=str(body.get("published_at", "")))
        except (ValueError, TypeError, KeyError):
            return None
        return update if update.alias and update.version else None


def publish_update(bootstrap: str, topic: str, update: ModelUpdate) -> None:
    """Send ``update`` and wait until Kafka has it (blocking; for the CLI)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
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
