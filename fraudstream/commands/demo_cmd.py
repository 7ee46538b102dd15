"""fraudstream demo: the whole system live: stack, model, two workers, a simulated stream."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fraudstream.commands.arg_types import (
    non_negative_int,
    positive_float,
    worker_count,
)
from fraudstream.commands.json_output import add_json_option, emit
from fraudstream.commands.simulate_cmd import (
    add_simulation_args,
    config_from_args,
    label_event_delay_s,
    run_simulation,
)
from fraudstream.deploy.local import stack_from_settings
from fraudstream.errors import UserError
from fraudstream.settings import MAX_WORKERS, SIGNING_KEY_FILE, Settings

if TYPE_CHECKING:
    from fraudstream.simulator import Dataset
    from fraudstream.workers.supervisor import Overview


#: Once the input has stopped, the demo waits for the rest to come out as long as outputs keep
#: coming (a backlog drains at the workers' pace: on a slow machine a fixed 60 s wait after a
#: 180 s run at 1,000 tx/s reported 38,688 records lost that were only still queued); it gives
#: up after this long without a single one.
DRAIN_QUIET_S = 30.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run everything: stack, model, workers and a live stream",
                       description="Starts the local stack (if not running), trains a model if "
                       "none exists, starts --workers scoring workers, streams simulated "
                       "transactions (with a few malformed ones) and their delayed labels, and "
                       "shows rate, scored, dead-lettered, decline rate, p50/p99 latency, the "
                       "consumer lag and any table restore or failover storm live. "
                       "Ctrl-C (or --duration) stops it; it then waits for every record to come "
                       "out (as long as the backlog drains: it gives up after 30 s without an "
                       "output; Ctrl-C again stops waiting), prints a JSON summary on stdout "
                       "and stops what it started.")
    p.add_argument("--duration", type=positive_float, default=None,
                   help="seconds of streaming (default: until Ctrl-C)")
    p.add_argument("--rate", type=positive_float, default=1000.0,
                   help="transactions per second (default 1000; with a label each, a "
                        "2-core machine here ran 1000 for 5 minutes, a minute of CPU hog "
                        "included, with a backlog under 200 records and a p99 of 166 ms "
                        "(2026-12-05); one 2.6 times slower fell behind at 500 with older code. "
                        "Above capacity the lag grows and drains after the input stops: "
                        "README, \"The two commands\")")
    p.add_argument("--workers", type=worker_count, default=2,
                   help=f"scoring workers (default 2, at most {MAX_WORKERS})")
    p.add_argument("--standby", type=non_negative_int, default=1,
                   help="warm standbys the supervisor keeps for failover (default 1)")
    p.add_argument("--bad-every", type=non_negative_int, default=500,
                   help="insert one malformed record after every N (0 = none; default 500)")
    p.add_argument("--label-delay-days", type=float, default=None,
                   help="event-time days after its transaction each label is published "
                   "(default: FRAUDSTREAM_LABEL_DELAY_DAYS, the delay the workers' merchant "
                   "features respect)")
    p.add_argument("--fresh", action="store_true",
                   help="start from empty topics: delete the app's topics (transactions, "
                   "scores, dead letters, labels, events, the tables' changelogs; not the "
                   "model registry's), its consumer group and the workers' local tables "
                   "first. Every demo streams the same simulated customers: on an earlier "
                   "run's topics their card features count those transactions too. Refused "
                   "while workers of the app run. `make demo` passes it")
    p.add_argument("--keep-stack", action="store_true", help="leave the local stack running")
    add_json_option(p, "the summary (printed as JSON either way)")
    add_simulation_args(p, customers=2000, terminals=4000, days=120)
    p.set_defaults(run=run)


def with_signing_key(settings: Settings) -> Settings:
    """Settings with a signing key: the configured one, or a local one kept in the state dir."""
    if settings.signing_key:
        return settings
    key_file = settings.state_dir / SIGNING_KEY_FILE
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    print(f"using the local signing key in {key_file} (set FRAUDSTREAM_SIGNING_KEY to use yours)",
          file=sys.stderr)
    return dataclasses.replace(settings, signing_key=key_file.read_text().strip())


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.commands.topics_cmd import require_topics
    from fraudstream.commands.train_cmd import ensure_model
    from fraudstream.workers.orphans import SupervisorBusy
    from fraudstream.workers.pool import WorkerStartError
    from fraudstream.workers.supervisor import Supervisor

    label_event_delay_s(args, settings)  # refuse a bad --label-delay-days before starting
    settings = with_signing_key(settings)
    stack = stack_from_settings(settings)
    started_stack = not all(s.running for s in stack.status())
    print("starting the local stack...", file=sys.stderr)
    from fraudstream.deploy.local import StackError

    pool: Supervisor | None = None
    try:
        try:
            stack.up()
        except StackError as exc:
            raise UserError(str(exc)) from exc
        start_state(settings, args.fresh)
        require_topics(settings)
        version = ensure_model(settings)
        print(f"model {version}; starting {args.workers} supervised workers and "
              f"{args.standby} standby...", file=sys.stderr)
        pool = Supervisor(settings, args.workers, args.standby,
                          notify=lambda line: print(f"\n{line}", file=sys.stderr, flush=True))
        pool.serve_metrics(required=False)
        try:
            pool.start()
            pool.wait_ready()
        except (WorkerStartError, SupervisorBusy) as exc:
            raise UserError(str(exc)) from exc
        pool.run_in_thread()
        if args.start_date == "2018-04-01":
            # Stream recent history, ending today, so successive demos move forward in time.
            args.start_date = time.strftime("%Y-%m-%d", time.gmtime(time.time()
                                                                     - args.days * 86_400))
        data = run_simulation(config_from_args(args, f"demo{int(time.time())}"))
        from fraudstream.ledger import quiet_collector

        with quiet_collector():
            summary = asyncio.run(stream_and_watch(settings, data, args, pool.overview,
                                                   lambda: pool.fatal if pool else None))
        summary["model_version"] = version
        summary["workers"] = args.workers
        summary["failovers"] = len(pool.events)
        summary["failover_reasons"] = sorted({e.reason for e in pool.events})
    finally:
        if pool is not None:
            pool.stop()
        if started_stack and not args.keep_stack:
            stack.down()
    emit(args, summary, lambda: print(json.dumps(summary, indent=2)))
    return 0 if summary["lost"] == 0 else 1


def start_state(settings: Settings, fresh: bool) -> None:
    """With ``fresh``, empty the app's topics and tables (``workers.app_reset``); without it,
    say when an earlier run's transactions are still there."""
    from fraudstream.workers.app_reset import AppBusy, records_in, reset_app

    if not fresh:
        earlier = records_in(settings, settings.topic_transactions)
        if earlier:
            print(f"{settings.topic_transactions} already holds {earlier:,} transactions of "
                  "earlier runs: this run's simulated customers are the same, so their card "
                  "features count those too (`fraudstream demo --fresh` starts empty)",
                  file=sys.stderr)
        return
    print("--fresh: deleting the app's topics, consumer group and local tables...",
          file=sys.stderr)
    try:
        deleted = reset_app(settings)
    except (AppBusy, TimeoutError) as exc:
        raise UserError(f"--fresh: {exc}") from exc
    print(f"--fresh: {len(deleted)} topics deleted and the app's topics created again, empty",
          file=sys.stderr)


async def stream_and_watch(settings: Settings, data: Dataset, args: argparse.Namespace,
                           overview: Callable[[], Overview] | None = None,
                           fatal: Callable[[], Exception | None] | None = None
                           ) -> dict[str, object]:
    """Produce the stream while reading scores and dead letters into a ledger; summarise.

    ``overview`` adds the supervisor's view (lag, restores, failover storm) to the live line;
    ``fatal`` returns the error that stopped the supervisor, which ends the demo.
    """
    import numpy as np

    from fraudstream.feeds import outgoing, with_bad_records
    from fraudstream.ledger import Ledger, seen_now_ms
    from fraudstream.streaming import ProduceStats, TopicReader, new_producer, produce_paced

    # SIGTERM stops the demo like Ctrl-C does: stop producing, drain, summarise.
    main_task = asyncio.current_task()
    if main_task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    ledger = Ledger()
    kinds = {settings.topic_scores: "scores", settings.topic_dlq: "dlq"}
    reader = TopicReader(settings, list(kinds), from_beginning=False)
    await reader.start()
    producer = new_producer(settings)
    await producer.start()
    stats = ProduceStats()
    stop_at = None if args.duration is None else time.monotonic() + args.duration
    stopping = False

    def should_stop() -> bool:
        return stopping or (stop_at is not None and time.monotonic() >= stop_at)

    records = with_bad_records(outgoing(data), args.bad_every)
    produce_task = asyncio.create_task(produce_paced(
        producer, records, topic=settings.topic_transactions, labels_topic=settings.topic_labels,
        rate=args.rate, label_delay_s=0,
        label_event_delay_s=label_event_delay_s(args, settings), stats=stats,
        should_stop=should_stop,
        on_delivered=lambda rec, partition, offset: ledger.produced(rec.value, partition,
                                                                    offset)))
    first_output: float | None = None
    last_output = time.monotonic()
    window: list[float] = []
    last_print = 0.0
    interactive = sys.stderr.isatty()
    input_done: float | None = None
    try:
        while True:
            try:
                batch = await reader.poll(0.2)
            except asyncio.CancelledError:
                # Ctrl-C (or SIGTERM) cancels this task: stop producing, let what was sent come
                # out, then summarise. A second one stops waiting.
                if main_task is not None:
                    # Handled here: without this, timeouts inside aiokafka would keep turning
                    # into cancellations for the rest of the drain.
                    main_task.uncancel()
                if stopping:
                    break
                stopping = True
                print("\nstopping: waiting for what was sent to come out (Ctrl-C again to skip)",
                      file=sys.stderr, flush=True)
                continue
            seen = seen_now_ms()
            for topic, _key, value, ts in batch:
                ledger.observe(kinds[topic], value, ts, seen)
            if batch:
                first_output = first_output or time.monotonic()
                last_output = time.monotonic()
                window = ledger.latencies_ms[-2000:]
            now = time.monotonic()
            if now - last_print >= 1.0:
                last_print = now
                lat = np.asarray(window) if window else np.zeros(1)
                declined = ledger.decision_counts.get("decline", 0)
                line = (f"sent {stats.sent:,} ({stats.rate:,.0f}/s) | scored {ledger.scored:,} | "
                        f"dead-lettered {ledger.dead_letters:,} | declined "
                        f"{100 * declined / max(ledger.scored, 1):.2f}%"
                        f" | latency p50 {np.percentile(lat, 50):.0f} ms p99 "
                        f"{np.percentile(lat, 99):.0f} ms")
                if overview is not None:
                    # Lag and restores make overload visible: a latency that grows while the
                    # lag grows is a backlog, not a failure.
                    line += " | " + overview().line()
                error = fatal() if fatal is not None else None
                if error is not None:
                    raise UserError(str(error))
                print(("\r" + line) if interactive else line, end="" if interactive else "\n",
                      file=sys.stderr, flush=True)
            if produce_task.done():
                produce_task.result()
                input_done = input_done or now
                if ledger.complete or now - max(last_output, input_done) > DRAIN_QUIET_S:
                    break
    except KeyboardInterrupt:
        stopping = True
    finally:
        stopping = True
        if not produce_task.done():
            await produce_task
        await producer.stop()
        await reader.stop()
    print(file=sys.stderr)
    summary = ledger.summary()
    elapsed = max(last_output - stats.started, 1e-9)
    summary["throughput_tx_per_s"] = round((ledger.scored + ledger.dead_letters) / elapsed, 1)
    summary["duration_s"] = round(elapsed, 1)
    return summary
