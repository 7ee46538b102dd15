"""fraudstream produce: replay a CSV or JSONL file into the transactions topic."""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fraudstream.commands.arg_types import non_negative_float
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


@dataclass(frozen=True)
class Envelope:
    """One record described by a line of an envelope file (``--envelopes``)."""

    line: int
    copy: int
    key: bytes | None
    value: bytes | None
    wrong_partition: bool = False


_NOW = re.compile(r"\{now([+-]\d+)s\}")


def _expand(node: Any, copy: int, now_s: float) -> Any:
    """``node`` with ``{i}`` (the copy number) and ``{now+Ns}`` (RFC 3339) filled in."""
    if isinstance(node, str):
        text = node.replace("{i}", str(copy))
        return _NOW.sub(lambda m: datetime.fromtimestamp(now_s + int(m.group(1)), UTC)
                        .isoformat().replace("+00:00", "Z"), text)
    if isinstance(node, list):
        return [_expand(n, copy, now_s) for n in node]
    if isinstance(node, dict):
        return {k: _expand(v, copy, now_s) for k, v in node.items()}
    return node


def envelope_records(path: Path, now_s: float) -> Iterator[Envelope]:
    """The records an envelope file describes, one line each (times ``repeat``).

    A line is a JSON object: ``value`` (any JSON, sent compact), ``value_text`` (a string sent
    as its UTF-8 bytes, for malformed JSON) or ``value_b64`` (exact bytes); none of them sends
    a record without a value. ``key`` (string), ``key_b64`` or ``key_null``; ``key_times`` repeats
    the key; without a key, the value's ``card_id`` is used when it can be read. ``pad``:
    [field, n] adds a field of n characters to the value. ``wrong_partition``: send to the
    partition after the one the key maps to. ``repeat``: send n copies, ``{i}`` in strings
    numbering them; ``{now+Ns}`` / ``{now-Ns}`` become RFC 3339 times relative to now. Other
    fields (``case``, ``expect``) are notes for the reader.
    """
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                spec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise UserError(f"{path}:{number}: not a JSON envelope ({exc})") from exc
            if not isinstance(spec, dict):
                raise UserError(f"{path}:{number}: an envelope is a JSON object")
            for copy in range(int(spec.get("repeat", 1))):
                yield _envelope(spec, number, copy, now_s)


def _envelope(spec: dict[str, Any], line: int, copy: int, now_s: float) -> Envelope:
    body = _expand(spec.get("value"), copy, now_s)
    if isinstance(spec.get("pad"), list) and isinstance(body, dict):
        name, size = spec["pad"]
        body = {**body, name: "x" * int(size)}
    value: bytes | None
    if "value_b64" in spec:
        value = base64.b64decode(spec["value_b64"])
    elif "value_text" in spec:
        value = _expand(spec["value_text"], copy, now_s).encode("utf-8", "surrogatepass")
    elif "value" in spec:
        value = orjson.dumps(body)
    else:
        value = None
    key: bytes | None = None
    if "key_b64" in spec:
        key = base64.b64decode(spec["key_b64"])
    elif "key" in spec:
        key = _expand(spec["key"], copy, now_s).encode("utf-8", "surrogatepass")
    elif not spec.get("key_null") and isinstance(body, dict) and isinstance(
            body.get("card_id"), str):
        key = body["card_id"].encode("utf-8", "surrogatepass")
    if key is not None and "key_times" in spec:
        key = key * int(spec["key_times"])
    return Envelope(line, copy, key, value, bool(spec.get("wrong_partition")))


def csv_records(path: Path, with_labels: bool) -> Iterator[Outgoing]:
    from fraudstream.feeds import outgoing
    from fraudstream.simulator import CsvFormatError, read_csv

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
                       "can be replayed to test dead-lettering; with --envelopes each line "
                       "describes one record (key, value, partition) instead, for hostile "
                       "input such as huge keys or records on the wrong partition (format in "
                       "tests/data/hostile_records.jsonl and `envelope_records`).")
    p.add_argument("--from", dest="source", type=Path, required=True, help="CSV or JSONL file")
    p.add_argument("--rate", type=non_negative_float, default=0.0,
                   help="records per second (default 0 = as fast as possible)")
    p.add_argument("--topic", default=None, help="target topic (default the transactions topic)")
    p.add_argument("--label-delay", type=non_negative_float, default=5.0,
                   help="CSV: seconds before each label is published (default 5)")
    p.add_argument("--no-labels", action="store_true", help="CSV: do not publish labels")
    p.add_argument("--envelopes", action="store_true",
                   help="JSONL: each line is an envelope {value|value_text|value_b64, "
                   "key|key_b64|key_null, key_times, pad, wrong_partition, repeat} describing "
                   "the record to send; {i} and {now+Ns} are filled in")
    p.add_argument("--report", type=Path, default=None,
                   help="with --envelopes: write one JSON line per record sent: line, copy, "
                   "partition, offset")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    source: Path = args.source
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    if args.envelopes:
        if source.suffix not in (".jsonl", ".ndjson"):
            raise UserError(f"{source}: --envelopes reads a .jsonl file")
        return asyncio.run(_produce_envelopes(envelope_records(source, time.time()), args,
                                              settings))
    if args.report is not None:
        raise UserError("--report needs --envelopes")
    if source.suffix in (".jsonl", ".ndjson", ".json"):
        records: Iterator[Outgoing] = jsonl_records(source)
    elif source.suffix == ".csv":
        records = csv_records(source, not args.no_labels)
    else:
        raise UserError(f"{source}: unknown format; use .csv (labelled) or .jsonl")
    return asyncio.run(_produce(records, args, settings))


def target_topic(args: argparse.Namespace, settings: Settings) -> str:
    """The topic to produce to, once the contract topics exist: ``--topic`` must name one
    that does (aiokafka waited 30 s for an unknown topic, logging an error a tenth of a
    second, then ended in a traceback)."""
    from fraudstream.commands.topics_cmd import require_topics
    from fraudstream.workers.topics import list_topics

    require_topics(settings)
    if args.topic is None:
        return settings.topic_transactions
    if args.topic not in list_topics(settings):
        raise UserError(f"topic {args.topic!r} does not exist in Kafka at "
                        f"{settings.kafka_bootstrap}; create it first, or leave --topic out "
                        f"to produce to the transactions topic ({settings.topic_transactions})")
    return args.topic


async def _produce(records: Iterator[Outgoing], args: argparse.Namespace,
                   settings: Settings) -> int:
    from fraudstream.streaming import new_producer, produce_paced

    topic = target_topic(args, settings)
    producer = new_producer(settings)
    await producer.start()
    try:
        stats = await produce_paced(producer, records, topic=topic,
                                    labels_topic=settings.topic_labels, rate=args.rate,
                                    label_delay_s=args.label_delay)
    finally:
        await producer.stop()
    print(f"sent {stats.sent:,} records ({stats.rate:,.0f}/s) and {stats.labels_sent:,} labels",
          file=sys.stderr)
    return 0


async def _produce_envelopes(records: Iterator[Envelope], args: argparse.Namespace,
                             settings: Settings) -> int:
    from fraudstream.streaming import new_producer
    from fraudstream.workers.output import key_partition

    topic = target_topic(args, settings)
    producer = new_producer(settings)
    await producer.start()
    sent: list[tuple[Envelope, asyncio.Future[Any]]] = []
    started = time.monotonic()
    try:
        every = sorted(await producer.partitions_for(topic))
        for env in records:
            partition = None
            if env.wrong_partition:
                partition = every[(key_partition(env.key or b"", len(every)) + 1) % len(every)]
            sent.append((env, await producer.send(topic, env.value, key=env.key,
                                                  partition=partition)))
            if args.rate > 0:
                ahead = started + len(sent) / args.rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        delivered = [(env, await future) for env, future in sent]
    finally:
        await producer.stop()
    if args.report is not None:
        with args.report.open("wb") as out:
            for env, meta in delivered:
                out.write(orjson.dumps({"line": env.line, "copy": env.copy,
                                        "partition": meta.partition, "offset": meta.offset})
                          + b"\n")
    print(f"sent {len(delivered):,} records", file=sys.stderr)
    return 0
