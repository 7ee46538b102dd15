"""The Prometheus metrics of the supervisor, in one container built by ``create``."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.process_collector import ProcessCollector

#: ``stopped`` is a worker that drained after SIGTERM (a deploy): replaced, but not a fault.
FAILOVER_REASONS = ("crashed", "hung", "not_ready", "no_progress", "stopped")


@dataclass(frozen=True)
class SupervisorMetrics:
    """Failovers, desired/healthy/restoring workers, ready standbys, lag and storm breakers."""

    registry: CollectorRegistry
    failovers: Counter
    workers_desired: Gauge
    workers_healthy: Gauge
    standbys_ready: Gauge
    standbys_desired: Gauge
    kafka_errors: Counter
    workers_restoring: Gauge
    failover_storm: Gauge
    consumer_lag: Gauge
    check_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None,
               prefix: str = "fraudstream") -> SupervisorMetrics:
        reg = registry if registry is not None else CollectorRegistry()
        ProcessCollector(registry=reg)
        p = prefix
        metrics = cls(
            registry=reg,
            failovers=Counter(f"{p}_failovers", "Workers replaced by the supervisor, by reason "
                              "(crashed, hung, not_ready, no_progress; stopped = drained "
                              "after SIGTERM, not a fault)", ["reason"],
                              registry=reg),
            workers_desired=Gauge(f"{p}_workers_desired", "Active workers the supervisor "
                                  "keeps running", registry=reg),
            workers_healthy=Gauge(f"{p}_workers_healthy", "Active workers that are alive "
                                  "and ready (a ready worker that misses a probe or two while "
                                  "busy still counts until it has been silent for the hang "
                                  "time)", registry=reg),
            standbys_ready=Gauge(f"{p}_standbys_ready", "Warm standbys ready to take over",
                                 registry=reg),
            standbys_desired=Gauge(f"{p}_standbys_desired", "Warm standbys the supervisor "
                                   "keeps", registry=reg),
            kafka_errors=Counter(f"{p}_kafka_errors", "Kafka requests of the supervisor that "
                                 "failed (progress checks, failover events)", registry=reg),
            workers_restoring=Gauge(f"{p}_workers_restoring", "Active workers restoring their "
                                    "tables from the changelogs (not ready, not failed)",
                                    registry=reg),
            failover_storm=Gauge(f"{p}_failover_storm", "Slots whose worker the supervisor "
                                 "stopped replacing: repeated failovers did not bring progress "
                                 "back", registry=reg),
            consumer_lag=Gauge(f"{p}_group_consumer_lag", "Records of the transactions topic "
                               "not yet committed by the workers' group, as the supervisor "
                               "reads it", registry=reg),
            check_errors=Counter(f"{p}_supervisor_check_errors", "Rounds of health checks or "
                                 "failovers that failed with an error (retried the next round)",
                                 registry=reg),
        )
        # Every reason exists at 0 from the start: a counter first seen at 1 shows no increase.
        for reason in FAILOVER_REASONS:
            metrics.failovers.labels(reason)
        return metrics
