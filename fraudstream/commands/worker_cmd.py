"""fraudstream worker: one scoring worker in the foreground (or a warm standby)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fraudstream.errors import UserError
from fraudstream.settings import Settings, SettingsError

# The exit status of a configuration error lives beside the supervisor rules that read it.
from fraudstream.workers.health import EXIT_CONFIG_ERROR

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run one scoring worker in the foreground",
                       description="A Faust worker of the FRAUDSTREAM_APP_ID group: consumes "
                       "transactions, validates them (bad ones to transactions.dlq with a reason), "
                       "keeps card and merchant features in Faust tables, scores micro-batches "
                       "with the registry's verified `production` model (else the one at "
                       "FRAUDSTREAM_MODEL_PATH), swaps in promoted versions without pausing, "
                       "falls back to the previous version or rules when the model fails, and "
                       "writes scores. Its "
                       "web server (health, readiness, /metrics) listens on "
                       "FRAUDSTREAM_BIND_HOST:FRAUDSTREAM_WORKER_WEB_PORT+index. A configuration "
                       "error (no FRAUDSTREAM_SIGNING_KEY, no model it can verify, Kafka "
                       "refusing its login or its TLS settings) exits with "
                       f"status {EXIT_CONFIG_ERROR} and one line on stderr.")
    p.add_argument("--index", type=int, default=1, help="worker number, sets its web port "
                   "(default 1)")
    p.add_argument("--instance-id", default=None,
                   help="static group membership id (KIP-345): a worker started later with the "
                        "same id takes over this one's partitions at once (set by the supervisor)")
    p.add_argument("--standby", metavar="READY_FILE", type=Path, default=None,
                   help="start as a warm standby: import everything, load and verify the model, "
                        "write READY_FILE, then wait for one JSON line on stdin "
                        '({"index": N, "instance_id": "..."}) before joining the group')
    p.add_argument("--loglevel", default="info", help="faust log level (default info)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.commands.topics_cmd import require_topics
    from fraudstream.model_registry.artifact import ArtifactError
    from fraudstream.model_registry.errors import ModelRefused, RegistryError
    from fraudstream.model_registry.registry import ModelRegistry
    from fraudstream.monitoring.metrics import WorkerMetrics
    from fraudstream.operations.models import no_signing_key
    from fraudstream.workers.app import WorkerApp
    from fraudstream.workers.hot_swap import current_for_activation, initial_scorer
    from fraudstream.workers.pool import stopping_file, worker_datadir
    from fraudstream.workers.runtime_tuning import tune_runtime
    from fraudstream.workers.scoring import limit_model_threads
    from fraudstream.workers.topics import check_partitions

    limit_model_threads()
    metrics = WorkerMetrics.create(refusal_reasons=ModelRefused.REASONS)
    try:
        if not settings.signing_key:
            raise UserError("refusing to start: " + no_signing_key(
                settings, "no model can be verified; set it to the key the models were "
                          "signed with"))
        try:
            registry = ModelRegistry.of(settings)
            initial = initial_scorer(settings, registry, metrics)
        except (ArtifactError, RegistryError) as exc:
            raise UserError(f"refusing to start: {exc}") from exc
    except UserError as exc:
        # One line and a status of its own: a supervisor stops on it instead of restarting a
        # worker that cannot start with this configuration.
        print(f"fraudstream worker: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG_ERROR
    refused = _refused_by_kafka(settings, require_topics)
    if refused:
        print(f"fraudstream worker: error: refusing to start: {refused}", file=sys.stderr,
              flush=True)
        return EXIT_CONFIG_ERROR
    problems = check_partitions(settings)
    if problems:
        # A configuration error, not a crash: every replacement would misroute the same way.
        print(f"fraudstream worker: error: refusing to start: {'; '.join(problems)}",
              file=sys.stderr, flush=True)
        return EXIT_CONFIG_ERROR
    index, instance_id = args.index, args.instance_id
    if args.standby is not None:
        index, instance_id = _wait_for_activation(args.standby)
        try:
            initial = current_for_activation(
                initial, lambda: registry.state().generation,
                lambda: initial_scorer(settings, registry, metrics))
        except ArtifactError as exc:
            print(f"fraudstream worker: error: refusing to start: {exc}", file=sys.stderr,
                  flush=True)
            return EXIT_CONFIG_ERROR
    worker_datadir(settings, index).mkdir(parents=True, exist_ok=True)
    worker_app = WorkerApp(settings, index, initial.scorer, metrics, registry,
                           initial.generation, instance_id=instance_id)
    logger.info("starting worker=%s model=%s source=%s instance_id=%s", worker_app.name,
                initial.scorer.version, initial.source, instance_id)
    worker = _announcing_worker_class()(worker_app.app, loglevel=args.loglevel, quiet=True,
                                        override_logging=False)
    worker.stopping_file = stopping_file(settings, os.getpid())
    # Everything built so far lives as long as the process (workers.runtime_tuning).
    tune_runtime(metrics.gc_pause)
    worker.execute_from_commandline()
    return 0


def _refused_by_kafka(settings: Settings, first_call: Callable[[Settings], object]) -> str | None:
    """Run the worker's first Kafka call; say why when the security settings are the reason.

    A missing TLS file, a refused login or an untrusted certificate fails every replacement
    the same way: a configuration error (its own exit status), not a crash to restart.
    Kafka being down still raises (the supervisor retries that).
    """
    from fraudstream import kafka_clients

    try:
        first_call(settings)
    except SettingsError as exc:
        return str(exc)
    except Exception as exc:
        problem = kafka_clients.connection_problem(settings) \
            if kafka_clients.is_unreachable(exc) else None
        if problem is None:
            raise
        return problem
    return None


def _announcing_worker_class() -> Any:
    """faust's Worker, announcing a stop before its services (the web server first) go.

    Built on call: importing faust at module level would slow every other command.
    """
    from faust.worker import Worker

    from fraudstream.workers.faust_bridge import stop_was_asked

    class AnnouncingWorker(Worker):
        stopping_file: Path | None = None

        async def on_stop(self) -> None:
            # mode calls on_stop when the stop begins (SIGTERM), before stopping children:
            # the supervisor then drains this worker instead of counting it as hung once
            # /health stops answering. A worker that fails (its web port taken, a crash)
            # stops the same way but is not draining: it says nothing, and its exit status
            # tells the supervisor (before, every such exit was replaced as `stopped`).
            if self.stopping_file is not None and stop_was_asked(self):
                self.stopping_file.parent.mkdir(parents=True, exist_ok=True)
                self.stopping_file.write_text(str(os.getpid()))
            await super().on_stop()

    return AnnouncingWorker


def _wait_for_activation(ready_file: Path) -> tuple[int, str | None]:
    """Announce readiness as a standby, then block until the supervisor assigns a slot."""
    ready_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid()}))
    tmp.replace(ready_file)
    logger.info("standby ready pid=%d, waiting for activation", os.getpid())
    line = sys.stdin.readline()
    if not line:
        raise UserError("standby: the supervisor closed stdin before activating this worker")
    try:
        order = json.loads(line)
        return int(order["index"]), order.get("instance_id")
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"standby: bad activation line {line.strip()!r}") from exc
