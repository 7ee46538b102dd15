"""``fraudstream``: the one command line of the system (``fraudstream <command> --help``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from fraudstream.commands import (
    api_cmd,
    backtest_cmd,
    bench_cmd,
    chaos_cmd,
    demo_cmd,
    produce_cmd,
    registry_cmd,
    simulate_cmd,
    stack_cmd,
    supervise_cmd,
    tail_cmd,
    topics_cmd,
    train_cmd,
    worker_cmd,
)
from fraudstream.errors import UserError
from fraudstream.settings import Settings, SettingsError, with_local_secrets

COMMANDS = (stack_cmd, topics_cmd, simulate_cmd, train_cmd, backtest_cmd, worker_cmd,
            supervise_cmd, produce_cmd, tail_cmd, demo_cmd, bench_cmd, chaos_cmd, api_cmd,
            registry_cmd)

EPILOG = "Settings come from FRAUDSTREAM_* environment variables:\n" + "\n".join(
    f"  {name:<36} default {default!r}" for name, default, _t in Settings.describe())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraudstream",
        description="Fault-tolerant streaming fraud detection: Kafka in, Faust workers, "
                    "scikit-learn models, scores out.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


#: The servers each command starts on FRAUDSTREAM_BIND_HOST (each is warned about when that
#: is not loopback: every one of them answers without a password to anyone who reaches it).
SERVERS = {
    "api": ("the API",),
    "worker": ("the worker's web server (health, metrics)",),
    "supervise": ("the supervisor's metrics", "the workers' web servers"),
    "stack": ("Kafka", "Redis", "Prometheus", "Alertmanager"),
    "demo": ("Kafka", "Redis", "Prometheus", "Alertmanager", "the workers' web servers",
             "the API"),
    "chaos": ("Kafka", "Redis", "Prometheus", "Alertmanager", "the supervisor's metrics",
              "the workers' web servers"),
    "bench": ("Kafka", "the workers' web servers"),
}

#: Commands that may start the local stack (and so its password-protected Redis).
STARTS_LOCAL_STACK = frozenset({"stack", "demo", "chaos", "bench"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # SIGTERM unwinds like Ctrl-C, so commands stop the processes they started.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        settings = with_local_secrets(Settings.from_env(),
                                      create=args.command in STARTS_LOCAL_STACK)
        for server in SERVERS.get(args.command, ()):
            warning = settings.exposure_warning(server)
            if warning:
                logging.getLogger("fraudstream").warning("%s", warning)
        return int(args.run(args, settings) or 0)
    except (UserError, SettingsError) as exc:
        print(f"fraudstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
