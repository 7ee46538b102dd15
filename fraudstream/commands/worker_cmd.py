"""fraudstream worker: one scoring worker in the foreground."""

from __future__ import annotations

import argparse
import logging

from fraudstream.errors import UserError
from fraudstream.settings import Settings

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
                       "FRAUDSTREAM_BIND_HOST:FRAUDSTREAM_WORKER_WEB_PORT+index.")
    p.add_argument("--index", type=int, default=1, help="worker number, sets its web port "
                   "(default 1)")
    p.add_argument("--loglevel", default="info", help="faust log level (default info)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from faust.worker import Worker

    from fraudstream.commands.topics_cmd import require_topics
    from model_registry.artifact import ArtifactError
    from model_registry.errors import RegistryError
    from monitoring.metrics import WorkerMetrics
    from workers.app import WorkerApp
    from workers.hot_swap import initial_scorer, registry_from_settings
    from workers.scoring import limit_model_threads

    limit_model_threads()
    metrics = WorkerMetrics.create()
    try:
        registry = registry_from_settings(settings)
        initial = initial_scorer(settings, registry, metrics)
    except (ArtifactError, RegistryError) as exc:
        raise UserError(f"refusing to start: {exc}") from exc
    require_topics(settings)
    (settings.state_dir / "faust" / f"worker-{args.index}").mkdir(parents=True, exist_ok=True)
    worker_app = WorkerApp(settings, args.index, initial.scorer, metrics, registry,
                           initial.generation)
    logger.info("starting worker=%s model=%s source=%s", worker_app.name,
                initial.scorer.version, initial.source)
    worker = Worker(worker_app.app, loglevel=args.loglevel, quiet=True,
                    override_logging=False)
    worker.execute_from_commandline()
    return 0
