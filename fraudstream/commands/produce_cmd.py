"""fraudstream produce: replay a CSV or JSONL file into the transactions topic."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from fraudstream.errors import UserError
from fraudstream.settings import Settings
from fraudstream.streaming import Outgoing


def jsonl_records(path: Path) -> Iterator[Outgoing]:
    """Each line sent byte for byte (broken ones too); the key is card_id when it can be read."""
    with path.open("rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            key = None
            try:
                body = orjson.loads(line)
                if isinstance(body, dict) and isinstance(body.get("card_id"), str):
                    key = body["card_id"].encode()
            except orjson.JSONDecodeError:
                pass
            yield Outgoing(key, line)


def csv_records(path: Path, with_labels: bool) -> Iterator[Outgoing]:
    from fraudstream.feeds import outgoing
    from simulator import CsvFormatError, read_csv

    try:
        ds = read_csv(path)
    except CsvFormatError as exc:
        raise UserError(str(exc)) from exc
    return outgoing(ds, with_labels=with_labels)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("produce", help="replay a CSV or JSONL file into Kafka",
                       description="A labelled CSV (the simulator's format) is sent as transaction "
                       "records, with labels to the labels topic after --label-delay seconds. "
                       "A .jsonl file is sent line by line, byte for byte, so malformed records "
                       "can be replayed to test dead-lettering.")
    p.add_argument("--from", dest="source", type=Path, required=True, help="CSV or JSONL file")
    p.add_argument("--rate", type=float, default=0.0,
                   help="records per second (default 0 = as fast as possible)")
    p.add_argument("--topic", default=None, help="target topic (default the transactions topic)")
    p.add_argument("--label-delay", type=float, default=5.0,
                   help="CSV: seconds before each label is published (default 5)")
    p.add_argument("--no-labels", action="store_true", help="CSV: do not publish labels")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    source: Path = args.source
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    if source.suffix in (".jsonl", ".ndjson", ".json"):
        records: Iterator[Outgoing] = jsonl_records(source)
    elif source.suffix == ".csv":
        records = csv_records(source, not args.no_labels)
    else:
        raise UserError(f"{source}: unknown format; use .csv (labelled) or .jsonl")
    return asyncio.run(_produce(records, args, settings))


async def _produce(records: Iterator[Outgoing], args: argparse.Namespace,
                   settings: Settings) -> int:
    from fraudstream.commands.topics_cmd import require_topics
    from fraudstream.streaming import new_producer, produce_paced

    require_topics(settings)
    producer = new_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        stats = await produce_paced(producer, records,
                                    topic=args.topic or settings.topic_transactions,
                                    labels_topic=settings.topic_labels, rate=args.rate,
                                    label_delay_s=args.label_delay)
    finally:
        await producer.stop()
    print(f"sent {stats.sent:,} records ({stats.rate:,.0f}/s) and {stats.labels_sent:,} labels",
          file=sys.stderr)
    return 0
