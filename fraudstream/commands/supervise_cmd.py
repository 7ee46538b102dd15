"""fraudstream supervise: active workers, warm standbys, health checks and failover."""

from __future__ import annotations

import argparse
import logging
import time

from fraudstream.commands.arg_types import (
    non_negative_int,
    positive_float,
    positive_int,
    worker_count,
)
from fraudstream.settings import MAX_WORKERS, Settings

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "supervise", help="run N active workers and K warm standbys with automatic failover",
        description="Starts N active scoring workers (each a static member of the consumer "
        "group, on web port FRAUDSTREAM_WORKER_WEB_PORT+slot) and K warm standbys (model "
        "loaded, waiting). Every --interval seconds it checks each worker: alive, /health "
        "answers (liveness), /ready (partitions assigned, model loaded), and committed offsets "
        "advance while there is a backlog (progress). A worker that crashed, hung, never got "
        "ready or stopped making progress is killed and its slot handed to a standby, which "
        "takes over the same partitions at once; a new standby is started. Slowness is not a "
        "fault: a worker restoring its tables (/ready says restoring) is kept while the restore "
        "progresses, lag alone never triggers a failover, and a worker stopping after SIGTERM "
        "is drained and replaced as `stopped`. When replacing a slot's worker --storm-failovers "
        "times within --storm-window did not bring progress back, the supervisor keeps the "
        "worker, prints a FAILOVER STORM line and sets fraudstream_failover_storm. A worker "
        "that refuses its configuration (e.g. no FRAUDSTREAM_SIGNING_KEY) stops the supervisor "
        "with that error (exit 2). Failovers are "
        "logged, counted in fraudstream_failovers_total{reason} (served on "
        "FRAUDSTREAM_SUPERVISOR_PORT /metrics) and published on FRAUDSTREAM_TOPIC_EVENTS.")
    p.add_argument("--workers", type=worker_count, default=2,
                   help=f"active workers (default 2, at most {MAX_WORKERS})")
    p.add_argument("--standby", type=non_negative_int, default=1, help="warm standbys (default 1)")
    p.add_argument("--interval", type=positive_float, default=0.5,
                   help="seconds between health checks (default 0.5)")
    p.add_argument("--hang-failures", type=positive_int, default=2,
                   help="consecutive failed /health probes (1 s timeout) that mean a worker "
                        "hangs, once --hang-seconds have also passed (default 2)")
    p.add_argument("--hang-seconds", type=positive_float, default=5.0,
                   help="seconds without a /health answer before a worker counts as hung: a "
                        "worker busy with a long batch on a starved CPU is slow, not hung "
                        "(default 5)")
    p.add_argument("--progress-timeout", type=positive_float, default=20.0,
                   help="seconds a ready worker may hold a backlog without committing before "
                        "it is replaced, counted from when it got ready; the limit grows to "
                        "4 of its partition's recent commit gaps when batches are slow "
                        "(default 20)")
    p.add_argument("--restore-stall", type=positive_float, default=60.0,
                   help="seconds a worker restoring its tables may go without restoring a "
                        "record before it is replaced; a restore that progresses is never cut "
                        "short (default 60)")
    p.add_argument("--drain-timeout", type=positive_float, default=30.0,
                   help="seconds a worker stopping after SIGTERM may take to finish its "
                        "batches before it is killed; either way it is replaced as `stopped`, "
                        "not as a fault (default 30)")
    p.add_argument("--storm-failovers", type=positive_int, default=3,
                   help="failovers of one slot within --storm-window after which the "
                        "supervisor stops replacing it and keeps its worker (default 3)")
    p.add_argument("--storm-window", type=positive_float, default=300.0,
                   help="seconds of the failover-storm window (default 300)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.commands.topics_cmd import require_topics
    from fraudstream.errors import UserError
    from fraudstream.workers import orphans
    from fraudstream.workers.orphans import SupervisorBusy
    from fraudstream.workers.pool import SlotPortTaken
    from fraudstream.workers.supervisor import HealthPolicy, Supervisor, WorkerConfigError

    require_topics(settings)
    policy = HealthPolicy(interval_s=args.interval, hang_failures=args.hang_failures,
                          hang_s=args.hang_seconds,
                          progress_timeout_s=args.progress_timeout,
                          restore_stall_s=args.restore_stall, drain_timeout_s=args.drain_timeout,
                          storm_failovers=args.storm_failovers,
                          storm_window_s=args.storm_window)
    supervisor = Supervisor(settings, args.workers, args.standby, policy,
                            notify=lambda line: print(line, flush=True))
    try:
        supervisor.serve_metrics()
    except OSError as exc:
        # Most often the port of another supervisor of this app: say that, not the port.
        try:
            orphans.claim(settings).close()
        except SupervisorBusy as busy:
            raise UserError(str(busy)) from exc
        raise UserError(f"cannot serve supervisor metrics on {settings.bind_host}:"
                        f"{settings.supervisor_port} ({exc}); set FRAUDSTREAM_SUPERVISOR_PORT "
                        "to a free port") from exc
    try:
        supervisor.start()
    except (SupervisorBusy, SlotPortTaken) as exc:
        supervisor.stop()
        raise UserError(str(exc)) from exc
    try:
        supervisor.wait_ready()
        print(f"supervising {args.workers} workers and {args.standby} standbys "
              f"(metrics on http://{settings.bind_host}:{settings.supervisor_port}/metrics)",
              flush=True)
        supervisor.run()
    except WorkerConfigError as exc:
        # Restarting a worker that refuses its configuration cannot help: stop, say why.
        raise UserError(str(exc)) from exc
    except KeyboardInterrupt:
        logger.info("stopping supervised workers")
    finally:
        started = time.monotonic()
        supervisor.stop()
        logger.info("stopped in %.1fs failovers=%d", time.monotonic() - started,
                    len(supervisor.events))
    return 0
