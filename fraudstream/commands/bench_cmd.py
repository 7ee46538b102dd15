"""fraudstream bench: throughput and latency of the workers, against a ceiling and a peer."""

from __future__ import annotations

import argparse
import os
import sys

from fraudstream.commands.demo_cmd import with_signing_key
from fraudstream.commands.json_output import add_json_option, emit, to_stdout
from fraudstream.commands.simulate_cmd import run_simulation
from fraudstream.deploy.local import stack_from_settings
from fraudstream.errors import UserError
from fraudstream.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure throughput and latency (a measurement, not a test)",
                       description="On the local stack and the same simulated data (one "
                       "label per transaction): sustained drain throughput of 1 and 2 "
                       "fraudstream workers, of a raw aiokafka loop doing the same work with "
                       "the same changelogs in one and in two processes (the ceilings) and of "
                       "a naive one-event-at-a-time "
                       "Faust agent (the peer), with their ratios (each drain's records "
                       "wait in an open Kafka transaction until the contender reads its "
                       "partitions and a worker pool's group has settled, then appear at "
                       "once; a pool's drain is run again, up to 3 times, when its group "
                       "still moved partitions during it); then end-to-end latency "
                       "percentiles at fixed input rates (1 and 2 workers unless "
                       "--latency-contenders says otherwise), and where "
                       "the time goes: queued (until the record's batch starts), scoring "
                       "(until its score is appended) and committed (until a read-committed "
                       "reader sees it). A cold broker (started by the bench, or with under 60 "
                       "CPU-seconds used) is first warmed up by 30 s of two workers, not "
                       "reported: its JIT compiling would slow whichever contender ran first.")
    p.add_argument("--records", type=int, default=60_000,
                   help="transactions per throughput run (default 60000; on a fast machine "
                   "the raw loops drain that in a few seconds, a burst faster than they "
                   "sustain: 120000 or more for a sustained ratio)")
    p.add_argument("--rates", default="1000",
                   help="comma-separated input rates for the latency runs (default 1000)")
    p.add_argument("--latency-seconds", type=float, default=20.0,
                   help="length of each latency run (default 20)")
    p.add_argument("--contenders", default="raw,raw2,naive,1,2,2-alo",
                   help="which to run: raw (aiokafka loop), raw2 (the loop in 2 processes, "
                        "each reading half of the partitions: the ceiling for 2 workers), "
                        "naive (Faust agent), 1 and 2 (fraudstream workers, exactly once), "
                        "2-alo (2 workers, at least once: the cost of the transactions); "
                        "default all")
    p.add_argument("--latency-contenders", default="1,2",
                   help="which get a latency run at each rate: 1, 2, 2-alo, and the raw loops "
                        "raw and raw2 (the same work with no Faust, no consumer group and no "
                        "transactions: the latency this machine allows at that rate); "
                        "default 1,2")
    p.add_argument("--restore", default="", metavar="CARDS",
                   help="instead: time how long a worker takes to get its card table back, "
                        "for each comma-separated number of cards (e.g. 10000,100000,1000000), "
                        "with the memory and the rocksdb store, from nothing (cold) and after "
                        "a SIGKILL in its slot (warm)")
    p.add_argument("--restore-tail", type=int, default=10_000,
                   help="changelog records written while the killed worker is down (default "
                        "10000)")
    add_json_option(p, "the report")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.deploy.local import StackError

    settings = with_signing_key(settings)
    try:
        rates = [float(r) for r in args.rates.split(",") if r]
    except ValueError as exc:
        raise UserError(f"--rates must be numbers separated by commas: {args.rates!r}") from exc
    stack = stack_from_settings(settings)
    started_stack = not stack.kafka_node(1).running()
    try:
        stack.up(("kafka",))
    except StackError as exc:
        raise UserError(str(exc)) from exc
    try:
        if args.restore:
            return _measure_restore(args, settings)
        return _measure(args, settings, rates, broker_started_now=started_stack)
    finally:
        if started_stack:
            stack.down()


def _measure(args: argparse.Namespace, settings: Settings, rates: list[float],
             broker_started_now: bool) -> int:
    from fraudstream.bench.harness import CONTENDERS, LATENCY_CONTENDERS, run_benchmark
    from fraudstream.commands.train_cmd import ensure_model

    # Kafka only: the workers serve the model file (no registry, hence no Redis).
    version = ensure_model(settings, register=False)
    days = 60
    from fraudstream.simulator import SimulationConfig

    data = run_simulation(SimulationConfig(n_customers=3000, n_terminals=6000, nb_days=days,
                                           id_prefix="bench"))
    runs = len([c for c in args.latency_contenders.split(",") if c])
    needed = args.records + runs * int(sum(rates) * args.latency_seconds)
    if len(data) < needed:
        raise UserError(f"the bench data has {len(data):,} transactions, {needed:,} needed; "
                        "lower --records or --latency-seconds")
    only = tuple(c for c in args.contenders.split(",") if c)
    unknown = set(only) - set(CONTENDERS)
    if unknown:
        raise UserError(f"unknown contender(s) {sorted(unknown)}; choose from {CONTENDERS}")
    latency_of = tuple(c for c in args.latency_contenders.split(",") if c)
    unknown = set(latency_of) - set(LATENCY_CONTENDERS)
    if unknown:
        raise UserError(f"no latency run for {sorted(unknown)}; --latency-contenders takes "
                        f"{','.join(LATENCY_CONTENDERS)}")
    from fraudstream.bench.harness import BenchError
    from fraudstream.bench.transactions import kafka_node_cpu
    from fraudstream.workers.pool import SlotPortTaken

    try:
        report = run_benchmark(settings, data, args.records, rates, args.latency_seconds,
                               say=lambda msg: print(msg, file=sys.stderr, flush=True),
                               only=only, latency_of=latency_of,
                               broker_cpu=kafka_node_cpu(settings),
                               broker_started_now=broker_started_now)
    except SlotPortTaken as exc:
        # Another program's port, not the machine's load: no load hint.
        raise UserError(f"{exc}; a benchmark needs the machine to itself") from exc
    except BenchError as exc:
        raise UserError(f"{exc}; the machine may be overloaded (load average "
                        f"{os.getloadavg()[0]:.1f}): rerun with fewer --records or lower "
                        "--rates") from exc
    report["model_version"] = version
    emit(args, report, lambda: print_report(report))
    return 0


def _measure_restore(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.bench.harness import machine_load
    from fraudstream.bench.restore import measure
    from fraudstream.commands.train_cmd import ensure_model

    try:
        sizes = [int(n) for n in args.restore.split(",") if n]
    except ValueError as exc:
        raise UserError(f"--restore must be card counts separated by commas: "
                        f"{args.restore!r}") from exc
    ensure_model(settings, register=False)
    runs = []
    # The table is printed as it is measured: on stderr when stdout is for the JSON.
    table = sys.stderr if to_stdout(args) else sys.stdout
    print(f"{'store':<8} {'cards':>9} {'baseline':>9} {'cold':>8} {'restoring':>9} "
          f"{'warm':>8} {'restoring':>9}   load", file=table, flush=True)
    for cards in sizes:
        for store in ("memory", "rocksdb"):
            print(f"measuring store={store} cards={cards:,} ...", file=sys.stderr, flush=True)
            run = measure(settings, store, cards, args.restore_tail)
            load = machine_load()["load_avg_1m"]
            runs.append({**run.to_json(), "load_avg_1m": load})
            print(f"{store:<8} {cards:>9,} {run.baseline_s:>8.1f}s {run.cold_s:>7.1f}s "
                  f"{run.cold_restoring_s:>8.1f}s {run.warm_s:>7.1f}s "
                  f"{run.warm_restoring_s:>8.1f}s   {load:.2f}", file=table, flush=True)
    print(f"(seconds to ready; cold = nothing on local disk, warm = restarted in its slot "
          f"after SIGKILL with {args.restore_tail:,} new changelog records)", file=table)
    emit(args, {"restore": runs}, lambda: None)
    return 0


def print_report(report: dict) -> None:
    """The figures, each with the machine's load when it was taken and the raw loop beside it
    (absolute speeds differ between machines: compare ratios within one run); a section only
    when the run measured something for it (``--contenders ''`` runs latency only)."""
    load = report.get("load_avg_1m", {})
    raw = report["throughput_tx_per_s"].get("raw aiokafka loop")
    beside = f" (raw loop {raw:,.0f} tx/s in this run)" if raw else ""
    if report["throughput_tx_per_s"]:
        print(f"\nthroughput ({report['records']:,} transactions each, "
              f"{report.get('labels_per_transaction', 0)} label per transaction, "
              f"{report.get('cores', 0):.0f} cores){beside}")
    drains, scores = report.get("drain_seconds", {}), report.get("scores_drain_seconds", {})
    moved = report.get("drains_with_a_rebalance", [])
    for name, value in report["throughput_tx_per_s"].items():
        detail = (f"   drained in {drains[name]:.1f} s (scores in {scores[name]:.1f} s)"
                  if name in drains and name in scores else "")
        if name in moved:
            detail += ", its group rebalanced meanwhile"
        print(f"  {name:<36} {value:>10,.0f} tx/s   load {load.get(name, float('nan')):.2f}"
              f"{detail}")
    if report["ratios"]:
        print("ratios")
    for name, value in report["ratios"].items():
        print(f"  {name:<36} {value:>10.2f}")
    if report["latency_ms"]:
        print(f"end-to-end latency{beside}")
    for name, lat in report["latency_ms"].items():
        print(f"  {name:<36} p50 {lat['p50']:>7.1f} ms   p99 {lat['p99']:>7.1f} ms   "
              f"load {load.get(name, float('nan')):.2f}")
        segments = lat.get("segments", {})
        if segments:
            print("    " + ", ".join(f"{part} p50 {v['p50']:.0f} / p99 {v['p99']:.0f} ms"
                                     for part, v in segments.items()))
        in_workers = lat.get("in_workers", {})
        if in_workers:
            print("    queued, in the workers: " + ", ".join(
                f"{part} p50 ~{v['p50']:.0f} / p99 ~{v['p99']:.0f} ms"
                for part, v in in_workers.items()))
    if any(lat.get("segments") for lat in report["latency_ms"].values()):
        print("  (queued: ingested -> its batch starts; scoring: -> score appended; committed: "
              "-> seen by a read-committed reader)")
    if any(lat.get("in_workers") for lat in report["latency_ms"].values()):
        print("  (arrival: ingested -> on the worker's event loop; batch wait: -> its batch "
              "starts; ~: estimated within the workers' histogram buckets, as a dashboard "
              "does)")
