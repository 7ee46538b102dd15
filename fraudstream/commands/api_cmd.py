"""fraudstream api: the HTTP API (submit transactions, read decisions, receive alerts)."""

from __future__ import annotations

import argparse
import logging

from fraudstream.settings import Settings

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Serve the HTTP API on FRAUDSTREAM_BIND_HOST:FRAUDSTREAM_API_PORT (127.0.0.1:8000 by default).
It produces to and reads from Kafka at FRAUDSTREAM_BOOTSTRAP_SERVERS (the local stack by
default), retrying until Kafka is reachable.

Endpoints:
  GET  /health                    200 {"status": "ok"} once its producer and scores consumer
                                  run; 503 with what is down otherwise
  GET  /metrics                   Prometheus metrics of the API (fraudstream_api_*)
  POST /api/transactions          one transaction (JSON body) -> validated, produced to the
                                  transactions topic keyed by card_id; 202 with its partition
                                  and offset, 422 {"error", "reason"} if invalid. Token needed.
  GET  /api/decisions/ID          its latest score record, or 404 if not scored yet;
                                  ?wait_s=N (0-30) waits up to N seconds for it. Decisions
                                  scored while the API was down are not known to it.
  POST /api/alerts/webhook        Alertmanager webhook receiver: loopback callers need no
                                  token, anyone else does
  GET  /api/alerts                {"firing": [...], "recent": [last 500 alerts]}
  GET  /dashboard                 the live dashboard (open it in a browser); it polls:
  GET  /api/dashboard/panels      every panel's title, kind, unit and PromQL
  GET  /api/dashboard/summary     every panel's latest values and the alerts Prometheus
                                  holds, read from FRAUDSTREAM_PROMETHEUS_URL (the local
                                  stack's by default); 503 "metrics unavailable: ..." if it
                                  does not answer
  GET  /api/dashboard/series?panel=ID&minutes=5
                                  a chart panel's series over the last minutes (1-60)
  GET  /api/registry/versions[/REF]   model versions; one version's manifest and replicas
  GET  /api/registry/aliases      production/shadow and their history
  GET  /api/registry/verify       replica check; POST /api/registry/verify/repair repairs
  POST /api/registry/aliases/A    {"version": V}: promote (announced to the workers);
                                  POST /api/registry/aliases/A/rollback. Token needed.

Token: mutations need the header `Authorization: Bearer $FRAUDSTREAM_API_TOKEN`. If
FRAUDSTREAM_API_TOKEN is unset they are refused with 503; a wrong or missing token gets 401.
Reads (decisions, alerts, dashboard, health, metrics) are open: keep the default loopback bind
host, or put the API behind something that authenticates, before exposing it."""


def _port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1-65535)")
    return port


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api", help="serve the HTTP API (submit transactions, read decisions, "
                       "receive alerts)", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=_port, default=None,
                   help="port to listen on (default FRAUDSTREAM_API_PORT, 8000)")
    p.set_defaults(run=run)


def _check_free(host: str, port: int) -> None:
    """Refuse a taken port in one line before serving: uvicorn logged the failure after its
    start-up line and exited 3."""
    from fraudstream.errors import UserError
    from fraudstream.loopback import bind_refused

    refused = bind_refused(host, port)
    if refused is not None:
        raise UserError(f"cannot listen on {host}:{port} ({refused}); choose another port "
                        "with --port or FRAUDSTREAM_API_PORT")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from fraudstream.api.app import create_app

    port = args.port if args.port is not None else settings.api_port
    _check_free(settings.bind_host, port)
    if not settings.api_token:
        logger.warning("FRAUDSTREAM_API_TOKEN is not set: POST endpoints will answer 503")
    # Beyond loopback the CLI has warned; on loopback, refuse other Host names (a web page
    # whose name was rebound to 127.0.0.1 would otherwise read decisions and post alerts).
    trusted = None if settings.beyond_loopback else ["127.0.0.1", "localhost", "::1", "[::1]"]
    logger.info("fraudstream api on http://%s:%d (Kafka %s)", settings.bind_host, port,
                settings.kafka_bootstrap)
    # log_config=None keeps the CLI's logging setup instead of uvicorn's own.
    uvicorn.run(create_app(settings, trusted_hosts=trusted), host=settings.bind_host, port=port,
                log_config=None)
    return 0
