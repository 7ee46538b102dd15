"""fraudstream tail: print what comes out of the system."""

from __future__ import annotations

import argparse
import asyncio
import sys

from fraudstream.commands.arg_types import positive_float, positive_int
from fraudstream.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tail", help="print records from scores, dlq, labels or transactions",
                       description="Print one JSON record per line (read_committed). By default it "
                       "follows new records; --from-beginning reads the topic from the start.")
    p.add_argument("stream", choices=["scores", "dlq", "labels", "transactions"])
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    p.add_argument("--max", type=positive_int, default=None, help="stop after N records")
    p.add_argument("--idle-timeout", type=positive_float, default=None,
                   help="stop when nothing arrives for this many seconds")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    topic = {"scores": settings.topic_scores, "dlq": settings.topic_dlq,
             "labels": settings.topic_labels,
             "transactions": settings.topic_transactions}[args.stream]
    return asyncio.run(_tail(topic, args, settings))


async def _tail(topic: str, args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.streaming import consume

    count = 0
    async for _topic, _key, value, _ts in consume(settings, [topic],
                                                  from_beginning=args.from_beginning,
                                                  idle_timeout_s=args.idle_timeout):
        sys.stdout.write((value or b"").decode("utf-8", "replace") + "\n")
        sys.stdout.flush()
        count += 1
        if args.max is not None and count >= args.max:
            break
    return 0
