"""fraudstream chaos run: inject a named failure under load and prove nothing was lost."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from fraudstream.commands.arg_types import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    worker_count,
)
from fraudstream.commands.json_output import add_json_option, json_file, to_stdout
from fraudstream.commands.simulate_cmd import DEMO_CUSTOMERS
from fraudstream.errors import UserError
from fraudstream.settings import MAX_WORKERS, Settings


class ScenarioListParser(argparse.ArgumentParser):
    """A parser whose help lists the chaos scenarios, looked up only when the help is shown.

    The scenarios live in the chaos package, which imports numpy and the Prometheus client:
    ``fraudstream --help`` should not pay for a list it does not print.
    """

    def format_help(self) -> str:
        from fraudstream.chaos.scenarios import SCENARIOS

        self.description = ("Scenarios:\n" + "\n".join(f"  {s.name:<15} {s.description}"
                                                       for s in SCENARIOS.values())
                            + "\n  all             every scenario in turn but soak, then a table")
        return super().format_help()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chaos", help="chaos-test failover: inject a fault under load, validate",
                       description="Fault injection against the local stack (fraudstream stack "
                       "up). Each run starts supervised workers on fresh topics, drives a steady "
                       "simulated load, injects the fault, heals it, and checks a ledger of every "
                       "produced record against the committed scores and dead letters. With "
                       "--target compose the faults act on a docker-compose deployment's "
                       "workers container instead (Docker SDK), judged by the same ledger.")
    chaos_sub = p.add_subparsers(dest="chaos_command", required=True, metavar="ACTION",
                                 parser_class=ScenarioListParser)
    run_p = chaos_sub.add_parser("run", help="run one scenario or all of them",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    run_p.add_argument("scenario", help="a scenario name, or all")
    add_json_option(run_p, "the report (to a FILE: with a .md summary and a .png timeline "
                    "next to it; with all, one file per scenario: NAME.json; to stdout: "
                    "{scenario: report})")
    run_p.add_argument("--rate", type=positive_float, default=500.0,
                       help="transactions per second (default 500)")
    run_p.add_argument("--duration", type=positive_float, default=None,
                       help="seconds of load (default 30; soak: 1800)")
    run_p.add_argument("--fault-at", type=non_negative_float, default=8.0,
                       help="seconds into the load when the fault is injected (default 8)")
    run_p.add_argument("--workers", type=worker_count, default=2,
                       help=f"active workers (default 2, at most {MAX_WORKERS})")
    run_p.add_argument("--standby", type=non_negative_int, default=1,
                       help="warm standbys (default 1)")
    run_p.add_argument("--fault-seconds", type=positive_float, default=None,
                       help="how long a fault that heals lasts (default: the scenario's own, "
                            "e.g. 20 s for overload and cpu-starve, 15 s for hang-worker)")
    run_p.add_argument("--cards", type=non_negative_int, default=None,
                       help="cards preloaded into the card table before the workers start "
                            "(default: the scenario's own, 1,000,000 for big-state-kill and 0 "
                            "for the others)")
    run_p.add_argument("--customers", type=positive_int, default=DEMO_CUSTOMERS,
                       help="simulated customers streamed (twice as many terminals): the "
                            "population the production model was trained on (`fraudstream "
                            "train --customers`); another one shifts the merchant features and "
                            f"drift alerts fire for real (default {DEMO_CUSTOMERS}, train's)")
    run_p.add_argument("--keep-topics", action="store_true",
                       help="leave each run's topics in place and print their names, so the "
                            "outputs can be audited afterwards with an independent reader")
    run_p.add_argument("--alert-time-scale", type=float, default=1.0, metavar="N",
                       help="divide every alert rule's for: window by N for the run (the "
                            "stack's Prometheus loads a shortened copy of the production rules "
                            "and gets them back afterwards), so alerts show fired, not pending, "
                            "and the scenario's expected alerts must fire to pass: 60 turns "
                            "FeatureDrift's 10m into 10s (default 1: production, where pending "
                            "is enough)")
    run_p.add_argument("--target", choices=("local", "compose"), default="local",
                       help="local: supervised workers this run starts on the local stack "
                            "(default); compose: the workers container of a running "
                            "docker-compose deployment, faulted through the Docker SDK "
                            "(kill-worker kills it, hang-worker pauses it, each healed after "
                            "--fault-seconds); point FRAUDSTREAM_BOOTSTRAP_SERVERS at its "
                            "Kafka host listener (127.0.0.1:29092)")
    run_p.add_argument("--project", default=None,
                       help="--target compose: the compose project (default "
                            "COMPOSE_PROJECT_NAME, else the current directory's name, as "
                            "docker-compose names it)")
    run_p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.chaos import ChaosRunner, RunPlan
    from fraudstream.chaos.scenarios import resolve
    from fraudstream.commands.demo_cmd import with_signing_key
    from fraudstream.commands.train_cmd import ensure_model
    from fraudstream.deploy.local import stack_from_settings

    try:
        scenarios = resolve(args.scenario)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from exc
    if args.fault_seconds is not None and args.fault_seconds <= 0:
        raise UserError("--fault-seconds must be more than 0")
    if args.cards is not None and args.cards < 0:
        raise UserError("--cards must be 0 or more")
    if args.customers < 1:
        raise UserError("--customers must be at least 1")
    if args.duration is None:
        defaults = {s.default_duration_s for s in scenarios if s.default_duration_s}
        args.duration = max(defaults) if len(scenarios) == 1 and defaults else 30.0
    if args.alert_time_scale < 1:
        raise UserError("--alert-time-scale must be at least 1 (1 keeps the production rules)")
    if args.fault_at >= args.duration:
        raise UserError("--fault-at must come before the end of --duration")
    if args.target == "compose":
        return run_on_compose(args, settings, scenarios)
    settings = with_signing_key(settings)
    stack = stack_from_settings(settings)
    if not all(s.ready for s in stack.status() if s.name.startswith("kafka")):
        raise UserError("Kafka is not running; start the local stack with `fraudstream stack "
                        "up` (or `--nodes 3` for kill-broker)")
    ensure_model(settings)
    plan = RunPlan(rate=args.rate, duration_s=args.duration, fault_at_s=args.fault_at,
                   workers=args.workers, standbys=args.standby, keep_topics=args.keep_topics,
                   preload_cards=args.cards, alert_time_scale=args.alert_time_scale,
                   fault_seconds=args.fault_seconds, customers=args.customers)
    return run_scenarios(args, ChaosRunner(settings, stack, plan), scenarios)


def compose_project(args: argparse.Namespace) -> str:
    """The project docker-compose would use here: --project, COMPOSE_PROJECT_NAME, the cwd."""
    import os
    import re
    from pathlib import Path

    name = args.project or os.environ.get("COMPOSE_PROJECT_NAME") or Path.cwd().name
    return re.sub(r"[^a-z0-9_-]", "", name.lower())


def run_on_compose(args: argparse.Namespace, settings: Settings, scenarios: list[Any]) -> int:
    from fraudstream.chaos import RunPlan
    from fraudstream.chaos.compose_target import ComposeRunner

    plan = RunPlan(rate=args.rate, duration_s=args.duration, fault_at_s=args.fault_at,
                   fault_seconds=args.fault_seconds, customers=args.customers)
    return run_scenarios(args, ComposeRunner(settings, plan, compose_project(args)), scenarios)


def run_scenarios(args: argparse.Namespace, runner: Any, scenarios: list[Any]) -> int:
    """Run each scenario, write and print its report; the exit status says if all passed."""
    from fraudstream.chaos.runner import ChaosBusy

    reports = []
    # Progress goes to stderr when stdout is for the JSON.
    out = sys.stderr if to_stdout(args) else sys.stdout
    for scenario in scenarios:
        print(f"chaos: {scenario.name}: {scenario.description}", file=out, flush=True)
        try:
            report = runner.run(scenario)
        except ChaosBusy as exc:
            raise UserError(str(exc)) from exc
        reports.append(report)
        if args.keep_topics and report.topics:
            print("  kept topics: " + ", ".join(f"{role}={name}"
                                                 for role, name in report.topics.items()),
                  file=out)
        if (path := json_file(args)) is not None:
            if len(scenarios) > 1:
                path = path.parent / f"{scenario.name}.json"
            for written in report.write(path):
                print(f"  wrote {written}", file=out)
        if not report.passed and not report.skipped:
            for name, tail in runner.logs.items():
                print(f"--- {name} log tail\n{tail}", file=out)
    if to_stdout(args):
        print(json.dumps({r.scenario: dataclasses.asdict(r) for r in reports}, indent=2))
    else:
        print(table(reports))
    skipped = [r.scenario for r in reports if r.skipped]
    if skipped:
        print(f"chaos: skipped, so not proven: {', '.join(skipped)}", file=sys.stderr)
    return exit_status(reports)


def exit_status(reports: list) -> int:
    """0 only when every scenario passed: a skipped one proved nothing."""
    return 0 if reports and all(r.passed and not r.skipped for r in reports) else 1


def table(reports: list) -> str:
    """One line per scenario: the numbers that prove (or disprove) it."""
    head = (f"{'scenario':<15} {'result':<7} {'produced':>8} {'scored':>7} {'dlq':>5} "
            f"{'lost':>5} {'dups':>5} {'replaced_s':>10} {'recovery_s':>10} {'drain_s':>7} "
            f"{'p99_during_ms':>13}  alerts (fired, *expected and pending)")
    rows = [head, "-" * len(head)]
    for r in reports:
        result = "skip" if r.skipped else "pass" if r.passed else "FAIL"
        during = r.p99_latency_ms.get("during")
        rows.append(f"{r.scenario:<15} {result:<7} {r.produced:>8} {r.scored:>7} "
                    f"{r.dead_lettered:>5} {r.lost:>5} {r.duplicates:>5} "
                    f"{_seconds(r.replaced_after_s):>10} {_seconds(r.recovery_seconds):>10} "
                    f"{_seconds(r.drained_after_heal_s):>7} "
                    f"{'-' if during is None else f'{during:.0f}':>13}  "
                    f"{_alerts(r)}"
                    + (f"  ({r.skipped})" if r.skipped else ""))
    return "\n".join(rows)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _alerts(report: Any) -> str:
    """Fired alerts, expected ones that were pending (starred), and how many others pended."""
    expected = [f"*{a}" for a in report.alerts_pending if a in report.alerts_expected]
    others = len(report.alerts_pending) - len(expected)
    shown = ",".join(report.alerts_fired + expected) or "-"
    return shown + (f" (+{others} pending)" if others else "")
