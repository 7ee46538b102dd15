"""fraudstream simulate: a labelled CSV, or a live stream of transactions and delayed labels."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fraudstream.commands.arg_types import non_negative_float, positive_int
from fraudstream.errors import UserError
from fraudstream.settings import Settings

if TYPE_CHECKING:
    # numpy comes with the simulator: imported where a command simulates, not to show --help.
    from fraudstream.simulator import Dataset, SimulationConfig

#: The population ``fraudstream train`` simulates by default (with twice as many terminals),
#: and the one chaos runs stream unless told otherwise. The density of customers and terminals
#: shapes the merchant features: against a model trained on 1,000 customers, a simulation of
#: 2,285 put merchant_nb_tx_30d at a PSI of 0.33-0.46 once warm (1,000: 0.02-0.04), so a run
#: that must not drift streams the population its model learnt.
DEMO_CUSTOMERS = 1000


def add_simulation_args(p: argparse.ArgumentParser, *, customers: int = 5000,
                        terminals: int = 10000, days: int = 183) -> None:
    """The simulator's knobs, shared by every command that simulates data."""
    g = p.add_argument_group("simulation (Fraud Detection Handbook, chapter 3)")
    g.add_argument("--customers", type=positive_int, default=customers,
                   help=f"cards (default {customers})")
    g.add_argument("--terminals", type=positive_int, default=terminals,
                   help=f"merchants/terminals (default {terminals})")
    g.add_argument("--days", type=positive_int, default=days,
                   help=f"days simulated (default {days})")
    g.add_argument("--start-date", default="2018-04-01", help="first day (default 2018-04-01)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--amount-scale", type=float, default=1.0,
                   help="multiply genuine amounts (drift injection; default 1.0)")
    g.add_argument("--id-prefix", default=None,
                   help="transaction id prefix (default: tx, or a run-unique one for --live)")


def config_from_args(args: argparse.Namespace, id_prefix: str = "tx") -> SimulationConfig:
    from fraudstream.simulator import SimulationConfig

    return SimulationConfig(n_customers=args.customers, n_terminals=args.terminals,
                            nb_days=args.days, start_date=args.start_date, seed=args.seed,
                            amount_scale=args.amount_scale, id_prefix=args.id_prefix or id_prefix)


def run_simulation(config: SimulationConfig, quiet: bool = False) -> Dataset:
    """Simulate with a progress bar on stderr."""
    from fraudstream.simulator import simulate

    interactive = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if quiet or (not interactive and done != total):
            return
        bar = "#" * int(30 * done / max(total, 1))
        print(f"\rsimulating [{bar:<30}] day {done}/{total}", end="", file=sys.stderr,
              flush=True)
    try:
        ds = simulate(config, progress)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if not quiet:
        print(file=sys.stderr)
    return ds


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="simulate transactions: a labelled CSV or a live stream",
                       description="Customers and terminals on a grid with the Handbook's three "
                       "fraud scenarios, seeded and reproducible. --out writes a labelled CSV "
                       "(transaction_id,timestamp,card_id,merchant_id,amount,is_fraud,"
                       "fraud_scenario); --live streams transactions to the transactions topic at "
                       "--rate and publishes each label to the labels topic when the stream's "
                       "event time passes the labelled transaction's time plus --label-delay-days "
                       "(as a live system with that label delay receives it).")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", type=Path, help="write a labelled CSV here")
    mode.add_argument("--live", action="store_true", help="stream to Kafka")
    p.add_argument("--rate", type=non_negative_float, default=1000.0,
                   help="--live: transactions per second, 0 = as fast as possible (default 1000)")
    p.add_argument("--label-delay-days", type=float, default=None,
                   help="--live: event-time days after its transaction each label is published "
                   "(default: FRAUDSTREAM_LABEL_DELAY_DAYS, the delay the workers' merchant "
                   "features respect)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="--live: stop after N transactions")
    p.add_argument("--no-labels", action="store_true", help="--live: do not publish labels")
    add_simulation_args(p)
    p.set_defaults(run=run)


def label_event_delay_s(args: argparse.Namespace, settings: Settings) -> float:
    """Seconds of event time between a transaction and the publication of its label."""
    days = settings.label_delay_days if args.label_delay_days is None else args.label_delay_days
    if days < 0:
        raise UserError(f"--label-delay-days must be 0 or more, not {days:g}")
    from fraudstream.features.windows import DAY_S

    return days * DAY_S


def run(args: argparse.Namespace, settings: Settings) -> int:
    prefix = "tx" if args.out else f"live{int(time.time())}"
    config = config_from_args(args, prefix)
    delay_s = label_event_delay_s(args, settings) if args.live else 0.0
    if not args.out:
        from fraudstream.commands.topics_cmd import require_topics

        # Before simulating (minutes at full scale): a missing Kafka is reported at once.
        require_topics(settings)
    ds = run_simulation(config)
    frauds = int(ds.is_fraud.sum())
    print(f"simulated {len(ds):,} transactions, {frauds:,} frauds "
          f"({100 * frauds / max(len(ds), 1):.2f}%)", file=sys.stderr)
    if args.out:
        from fraudstream.simulator import write_csv

        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)  # as backtest --json does
            write_csv(ds, args.out)
        except OSError as exc:
            raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
        print(f"wrote {args.out}")
        return 0
    return asyncio.run(_stream(ds, args, settings, delay_s))


async def _stream(ds: Dataset, args: argparse.Namespace, settings: Settings,
                  label_delay_s: float) -> int:
    from fraudstream.feeds import outgoing
    from fraudstream.streaming import ProduceStats, new_producer, produce_paced

    producer = new_producer(settings)
    await producer.start()
    stats = ProduceStats()

    async def report() -> None:
        while True:
            await asyncio.sleep(1.0)
            print(f"\rsent {stats.sent:,} transactions ({stats.rate:,.0f}/s), "
                  f"{stats.labels_sent:,} labels", end="", file=sys.stderr, flush=True)

    reporter = asyncio.create_task(report())
    try:
        await produce_paced(producer, outgoing(ds, 0, args.limit, not args.no_labels),
                            topic=settings.topic_transactions, labels_topic=settings.topic_labels,
                            rate=args.rate, label_delay_s=0, label_event_delay_s=label_delay_s,
                            stats=stats)
    finally:
        reporter.cancel()
        await producer.stop()
    print(f"\nsent {stats.sent:,} transactions and {stats.labels_sent:,} labels", file=sys.stderr)
    return 0
