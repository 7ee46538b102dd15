"""fraudstream stack up|down|status: the local Kafka, Redis, Prometheus and Alertmanager."""

from __future__ import annotations

import argparse
import time

from fraudstream.deploy.local import StackError, stack_from_settings
from fraudstream.deploy.local.stack import ALL_SERVICES, NODE_PORTS_RULE
from fraudstream.errors import UserError
from fraudstream.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stack", help="start, stop or inspect the local stack",
                       description="Real Kafka (KRaft, from Maven Central jars), Redis, Prometheus "
                       "and Alertmanager on loopback, without Docker. Data, logs and pid files "
                       "live "
                       "under FRAUDSTREAM_STATE_DIR (default .stack/); `down` stops exactly the "
                       "processes `up` started, and a failed `up` stops what it started. Ports "
                       "come from the FRAUDSTREAM_*_PORT environment variables.")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--nodes", type=int, default=None,
                   help="Kafka nodes (1, or 3 for replication 3 / min.insync.replicas 2); "
                        f"default FRAUDSTREAM_KAFKA_NODES; {NODE_PORTS_RULE}")
    p.add_argument("--services", default=",".join(ALL_SERVICES),
                   help=f"comma-separated services to start (default: {','.join(ALL_SERVICES)})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        stack = stack_from_settings(settings, args.nodes)
        if args.action == "up":
            started = time.monotonic()
            stack.up(tuple(s for s in args.services.split(",") if s))
            print(f"stack ready in {time.monotonic() - started:.1f}s; "
                  f"Kafka at {stack.bootstrap}")
        elif args.action == "down":
            stopped = stack.down()
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        for st in stack.status():
            state = "ready" if st.ready else ("starting" if st.running else "stopped")
            pid = st.pid if st.pid is not None else "-"
            print(f"{st.name:<14} {state:<9} pid {pid!s:<8} {st.address}")
    except StackError as exc:
        raise UserError(str(exc)) from exc
    return 0
