"""fraudstream topics create: the contract topics, created if missing."""

from __future__ import annotations

import argparse

from fraudstream.errors import UserError
from fraudstream.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("topics", help="create the Kafka topics (idempotent)",
                       description="Create transactions, scores, transactions.dlq, labels and "
                       "model-updates (compacted) with FRAUDSTREAM_PARTITIONS partitions and "
                       "FRAUDSTREAM_REPLICATION_FACTOR replicas, if they do not exist.")
    p.add_argument("action", choices=["create"])
    p.set_defaults(run=run)


def require_topics(settings: Settings) -> list[str]:
    """Create the missing contract topics, or fail with what to do when Kafka cannot be reached."""
    from kafka.errors import KafkaError

    from workers.topics import ensure_topics

    try:
        return ensure_topics(settings)
    except KafkaError as exc:
        raise UserError(f"cannot reach Kafka at {settings.kafka_bootstrap} ({exc}); start it "
                        "with `fraudstream stack up` or set FRAUDSTREAM_BOOTSTRAP_SERVERS") from exc


def run(args: argparse.Namespace, settings: Settings) -> int:
    created = require_topics(settings)
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0
