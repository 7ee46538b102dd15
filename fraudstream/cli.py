"""``fraudstream``: the one command line of the system (``fraudstream <command> --help``).

Command modules import their heavy libraries (scikit-learn, Faust, aiokafka, numpy) inside the
functions that use them, so that ``--help`` answers at once; tests/unit/test_cli_startup.py
checks it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from fraudstream import kafka_clients
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


#: What to do when no Kafka broker answers (printed after the address that was tried).
KAFKA_DOWN_HINT = ("start it with `fraudstream stack up`, or point FRAUDSTREAM_BOOTSTRAP_SERVERS "
                   "at a running cluster")


def installed_version() -> str:
    """The installed distribution's version; the package's own when run from a bare checkout."""
    from importlib import metadata

    try:
        return metadata.version("fraudstream")
    except metadata.PackageNotFoundError:
        from fraudstream import __version__

        return __version__


class VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (the metadata lookup costs time)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"{parser.prog} {installed_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraudstream",
        description="Fault-tolerant streaming fraud detection: Kafka in, Faust workers, "
                    "scikit-learn models, scores out.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--version", action=VersionAction, help="print the version and exit")
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
    if not args.verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(ConnectFailureNoise())
    # SIGTERM unwinds like Ctrl-C, so commands stop the processes they started.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        # `stack status` and `stack down` start nothing: they create no secrets (status wrote
        # a Redis password into a state dir that did not exist).
        starts = (args.command in STARTS_LOCAL_STACK
                  and getattr(args, "action", None) not in ("status", "down"))
        settings = with_local_secrets(Settings.from_env(), create=starts)
        for server in SERVERS.get(args.command, ()):
            warning = settings.exposure_warning(server)
            if warning:
                logging.getLogger("fraudstream").warning("%s", warning)
        code = int(args.run(args, settings) or 0)
        sys.stdout.flush()  # here, so that a reader gone away is met below, not at exit
        return code
    except (UserError, SettingsError) as exc:
        print(f"fraudstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error to report. Python would print one
        # more traceback flushing stdout at exit, so stdout goes nowhere from here on.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except Exception as exc:
        if not kafka_clients.is_unreachable(exc):
            raise
        logging.getLogger("fraudstream").debug("Kafka unreachable", exc_info=True)
        # A refused login or an untrusted certificate also fails the bootstrap: say which.
        problem = kafka_clients.connection_problem(settings)
        print(f"fraudstream {args.command}: error: " + (
            problem or f"cannot reach Kafka at {settings.kafka_bootstrap}; {KAFKA_DOWN_HINT}"),
            file=sys.stderr)
        return 2


class ConnectFailureNoise(logging.Filter):
    """Drops the Kafka libraries' own logs about failing to connect or to log in (several per
    attempt).

    When no broker answers, the command says so in one line with what to do; the libraries'
    lines would bury it (``-v`` keeps them). Other Kafka warnings and errors pass. Long-running
    commands report a lost broker through their metrics and health endpoints instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(("kafka", "aiokafka")):
            return True
        message = record.getMessage().lower()
        # A refused SASL login is reported the same way (the command names the cause),
        # kafka-python logs "Abort (<reason>)" for each connection it drops while bootstrapping,
        # and "DNS lookup failed" for each try at a name that does not resolve.
        return not any(marker in message for marker in ("bootstrap", "connect",
                                                        "authentication", "abort (",
                                                        "dns lookup failed"))


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
