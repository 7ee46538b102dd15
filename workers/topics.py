"""The Kafka topics of the system, created idempotently before anything produces or consumes."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from fraudstream.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    configs: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic named by the contracts, with its partitions and configuration."""
    p, rf = settings.partitions, settings.replication_factor
    isr = {"min.insync.replicas": "2"} if rf >= 3 else {}
    return [
        TopicSpec(settings.topic_transactions, p, rf, dict(isr)),
        TopicSpec(settings.topic_scores, p, rf, dict(isr)),
        TopicSpec(settings.topic_dlq, p, rf, {**isr, "max.message.bytes": "2097152"}),
        TopicSpec(settings.topic_labels, p, rf, dict(isr)),
        TopicSpec(settings.topic_model_updates, 1, rf, {**isr, "cleanup.policy": "compact"}),
        TopicSpec(settings.topic_events, 1, rf, dict(isr)),
    ]


def list_topics(settings: Settings) -> list[str]:
    """Every topic of the cluster, sorted (Kafka's internal ones included)."""
    from fraudstream import kafka_clients

    admin = kafka_clients.admin(settings, client_id="fraudstream-admin",
                                request_timeout_ms=15000)
    try:
        return sorted(admin.list_topics())
    finally:
        admin.close()


def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics; returns the names created."""
    from kafka.errors import TopicAlreadyExistsError

    from fraudstream import kafka_clients

    admin = kafka_clients.admin(settings, client_id="fraudstream-admin",
                                request_timeout_ms=15000)
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topic_specs(settings) if t.name not in existing]
        if not wanted:
            return []
        request = {t.name: {"num_partitions": t.partitions, "replication_factor": t.replication,
                            "configs": t.configs} for t in wanted}
        # Another process may create one between the listing and the request.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(request, wait_for_metadata=True)
        logger.info("created topics names=%s", [t.name for t in wanted])
        return [t.name for t in wanted]
    finally:
        admin.close()
