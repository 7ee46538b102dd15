"""fraudstream topics create|list: the contract topics, created if missing, and listed."""

from __future__ import annotations

import argparse

from fraudstream.errors import UserError
from fraudstream.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("topics", help="create the Kafka topics (idempotent), or list them",
                       description="create: create transactions, scores, transactions.dlq, "
                       "labels, model-updates (compacted) and fraudstream.events with "
                       "FRAUDSTREAM_PARTITIONS partitions and FRAUDSTREAM_REPLICATION_FACTOR "
                       "replicas, if they do not exist. list: print every topic of the cluster, "
                       "one per line, then the contract topics that are missing.")
    p.add_argument("action", choices=["create", "list"])
    p.set_defaults(run=run)


def require_topics(settings: Settings) -> list[str]:
    """Create the missing contract topics; returns their names.

    An unreachable Kafka propagates (the command line reports it in one line); any other
    refusal becomes a ``UserError`` saying what Kafka answered.
    """
    from kafka.errors import KafkaError

    from fraudstream import kafka_clients
    from fraudstream.workers.topics import ensure_topics

    try:
        return ensure_topics(settings)
    except KafkaError as exc:
        if kafka_clients.is_unreachable(exc):
            raise
        raise UserError(f"Kafka at {settings.kafka_bootstrap} did not create the topics "
                        f"({exc!r})") from exc


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        from fraudstream.workers.topics import list_topics, topic_specs

        existing = list_topics(settings)
        for name in existing:
            print(name)
        missing = [t.name for t in topic_specs(settings) if t.name not in existing]
        if missing:
            print(f"missing (run `fraudstream topics create`): {', '.join(missing)}")
        return 0
    created = require_topics(settings)
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0
