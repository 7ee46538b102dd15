"""Produce → consume → inject a fault → heal → validate, for one named scenario.

The shape of Kafka's own system tests: a steady load from the simulator, the fault in the
middle, then a ledger of every produced record checked against the committed ``scores`` and
``transactions.dlq`` (read_committed). Workers run under the supervisor, as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.faults import FaultContext, FaultUnavailable
from chaos.report import (
    ChaosReport,
    drain_seconds,
    p99_by_phase,
    recovery_seconds,
    timeline,
)
from chaos.scenarios import Scenario
from deploy.local import LocalStack
from fraudstream.commands.train_cmd import ensure_production
from fraudstream.feeds import outgoing, with_bad_records
from fraudstream.ledger import Ledger
from fraudstream.settings import Settings
from fraudstream.streaming import Outgoing, ProduceStats, TopicReader, new_producer, produce_paced
from simulator import SimulationConfig, simulate
from workers.supervisor import HealthPolicy, Supervisor
from workers.topics import ensure_topics

logger = logging.getLogger(__name__)


async def read_until_settled(reader: TopicReader, observe: Callable[[str, bytes | None, int],
                                                                     None],
                             settle_s: float, timeout_s: float = 60.0) -> None:
    """Read until every partition is at its end and nothing new came for ``settle_s``.

    Stopping as soon as the counts balance would miss a late duplicate; stopping on a quiet
    poll alone would miss records still being fetched.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    quiet_since = loop.time()
    while loop.time() < deadline:
        records = await reader.poll(0.5)
        for topic, _k, value, ts in records:
            observe(topic, value, ts)
        if records or not await reader.at_end():
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= settle_s:
            return
    logger.warning("outputs did not settle within %.0fs; the ledger may be incomplete",
                   timeout_s)


def load_phases(plan: RunPlan, scenario: Scenario) -> list[tuple[int, float]]:
    """(records, rate) of each stretch of the load: before the fault, during it, after it.

    A scenario without its own rates runs at ``plan.rate`` for ``plan.duration_s``. One that
    changes the rate while the fault lasts produces ``heal_after_s`` seconds' worth at the
    changed rate, then the rest of the duration at its after-rate.
    """
    if scenario.rate_during is None and scenario.rate_after is None:
        return [(int(plan.rate * plan.duration_s), plan.rate)]
    during_rate = plan.rate * (scenario.rate_during or 1.0)
    after_rate = plan.rate * (scenario.rate_after or 1.0)
    after_s = max(plan.duration_s - plan.fault_at_s - scenario.heal_after_s, 0.0)
    return [(int(plan.rate * plan.fault_at_s), plan.rate),
            (int(during_rate * scenario.heal_after_s), during_rate),
            (int(after_rate * after_s), after_rate)]


@dataclass(frozen=True)
class RunPlan:
    """Load and timing of a run."""

    rate: float = 500.0
    duration_s: float = 30.0
    fault_at_s: float = 8.0
    workers: int = 2
    standbys: int = 1
    #: After the load ends, how long to wait for every record's outcome.
    drain_timeout_s: float = 120.0
    #: After every record has an outcome, outputs must stay at their end this long.
    settle_s: float = 3.0
    seed: int = 11
    #: Leave the run's topics in place for an independent audit (their names are reported).
    keep_topics: bool = False


#: The PSI the drift alert fires above (monitoring/rules/fraudstream.yml).
DRIFT_PSI = 0.25


def max_worker_metric(settings: Settings, supervisor: Supervisor, sample: str) -> float | None:
    """The largest value of one sample (name and labels, exactly) over the active workers."""
    values = worker_metric_values(settings, supervisor, sample)
    return max(values) if values else None


def summed_worker_metric(settings: Settings, supervisor: Supervisor, sample: str) -> int | None:
    """The sum of one counter sample over the active workers (None if none answered)."""
    values = worker_metric_values(settings, supervisor, sample)
    return int(sum(values)) if values else None


def worker_metric_values(settings: Settings, supervisor: Supervisor, sample: str) -> list[float]:
    """One sample's value (name and labels, exactly) from each active worker that answers."""
    values = []
    for slot in supervisor.slots:
        url = f"http://{settings.bind_host}:{settings.worker_web_port + slot.index}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                text = resp.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(sample + " "):
                values.append(float(line.rsplit(" ", 1)[1]))
    return values


def delete_run_topics(bootstrap: str, tag: str) -> list[str]:
    """Delete a run's topics (its own and Faust's, all named with its tag); best effort."""
    from fraudstream import kafka_clients

    try:
        admin = kafka_clients.admin(bootstrap, client_id="fraudstream-chaos",
                                    request_timeout_ms=15000)
    except Exception as exc:
        logger.warning("run topics not deleted tag=%s error=%r", tag, exc)
        return []
    try:
        topics = sorted(t for t in admin.list_topics()
                        if t.endswith(f"-{tag}") or t.startswith(f"chaos-{tag}-"))
        if topics:
            admin.delete_topics(topics)
        return topics
    except Exception as exc:  # a cleanup failure must not fail the run
        logger.warning("run topics not deleted tag=%s error=%r", tag, exc)
        return []
    finally:
        admin.close()


class ChaosBusy(RuntimeError):
    """Another chaos run is using the same local stack."""


@contextlib.contextmanager
def exclusive_run(state_dir: Path) -> Iterator[None]:
    """Hold ``state_dir/chaos.lock`` for one run, or raise ``ChaosBusy`` at once."""
    import fcntl

    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "chaos.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ChaosBusy(f"another chaos run is using the stack under {state_dir}; wait for "
                            "it to finish (its workers and brokers would clash)") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def missing_alerts(expected: Sequence[str], seen: dict[str, set[str]],
                   answered: bool) -> list[str]:
    """Expected alerts neither firing nor pending; every one of them when Prometheus never
    answered (an alert check that could not ask anybody proves nothing)."""
    if not answered:
        return sorted(expected)
    return sorted(set(expected) - seen["firing"] - seen["pending"])


def run_alerts(body: dict[str, Any], app_id: str, since_ms: int) -> dict[str, set[str]]:
    """Alert names by state (firing, pending) in a Prometheus /api/v1/alerts answer.

    Only the run's own alerts (its app label) that became active once the load started (not
    during the workers' start) count, and a feature's drift alert is named with its feature:
    ``FraudstreamFeatureDrift[amount]``.
    """
    found: dict[str, set[str]] = {"firing": set(), "pending": set()}
    for alert in body.get("data", {}).get("alerts", []):
        labels = alert.get("labels", {})
        if labels.get("app", app_id) != app_id:
            continue
        active_ms = _epoch_ms(alert.get("activeAt", ""))
        state = alert.get("state")
        if state in found and (active_ms is None or active_ms >= since_ms):
            name = labels.get("alertname", "?")
            found[state].add(f"{name}[{labels['feature']}]" if "feature" in labels else name)
    return found


def _epoch_ms(rfc3339: str) -> int | None:
    """Milliseconds since the epoch of Prometheus' ``activeAt`` (None if unreadable)."""
    try:
        return int(datetime.fromisoformat(rfc3339).timestamp() * 1000)
    except ValueError:
        return None


class ChaosRunner:
    """Runs scenarios against a live Kafka (and, for stack faults, the local stack)."""

    def __init__(self, settings: Settings, stack: LocalStack | None, plan: RunPlan,
                 policy: HealthPolicy | None = None, isolate: bool = True) -> None:
        self.base = settings
        self.stack = stack
        self.plan = plan
        self.policy = policy or HealthPolicy()
        self.isolate = isolate
        #: The last lines of every worker's log after the last run (dumped when it fails).
        self.logs: dict[str, str] = {}
        self._notes: dict[str, Any] = {}

    def run(self, scenario: Scenario) -> ChaosReport:
        """Run one scenario end to end and judge it (one run at a time per state dir).

        Raises ``ChaosBusy`` while another run holds the state dir: two runs would fight over
        the workers' ports and the brokers.
        """
        with exclusive_run(self.base.state_dir):
            return self._run(scenario)

    def _run(self, scenario: Scenario) -> ChaosReport:
        """Run one scenario end to end and judge it.

        A scenario that needs three brokers, on a stack with fewer, runs on a three-node Kafka
        of its own (started under the state dir, stopped afterwards).
        """
        if scenario.kafka_nodes > 1 and (self.stack is None
                                         or self.stack.config.kafka_nodes < scenario.kafka_nodes):
            from chaos.three_nodes import three_node_kafka

            with three_node_kafka(self.base.state_dir / "chaos-kafka-3", self.base.bind_host,
                                  self.base.kafka_port) as kafka3:
                inner = ChaosRunner(
                    dataclasses.replace(self.base, bootstrap_servers=kafka3.bootstrap,
                                        kafka_port=kafka3.config.kafka_port, kafka_nodes=3,
                                        replication_factor=3),
                    kafka3, self.plan, self.policy, self.isolate)
                report = inner._run(scenario)
                self.logs = inner.logs
                return report
        settings = self._fresh_settings() if self.isolate else self.base
        report = ChaosReport(scenario.name, run_id=settings.app_id,
                             alerts_expected=list(scenario.expect_alerts))
        ensure_topics(settings)
        ensure_production(settings)
        supervisor = Supervisor(settings, self.plan.workers, self.plan.standbys, self.policy)
        supervisor.serve_metrics(required=False)
        supervisor.start()
        ctx = FaultContext(supervisor, self.stack, settings)
        try:
            supervisor.wait_ready(timeout=180)
            thread = supervisor.run_in_thread()
            try:
                ledger, start_ms = asyncio.run(self._drive(settings, scenario, ctx, report))
                report.gap_records_read = summed_worker_metric(
                    settings, supervisor, "fraudstream_offsets_gap_filled_total")
                report.redelivered_dropped = summed_worker_metric(
                    settings, supervisor, "fraudstream_offsets_redelivered_total")
                if scenario.drift_amount_scale:
                    report.amount_psi = max_worker_metric(
                        settings, supervisor, 'fraudstream_feature_drift{feature="amount",'
                        'method="psi"}')
            finally:
                supervisor.request_stop()
                thread.join(10)
        except FaultUnavailable as exc:
            report.skipped = str(exc)
            return report
        finally:
            supervisor.stop()
            if scenario.heal is not None and report.healed_at_s is None:
                try:
                    scenario.heal(ctx)
                except Exception as exc:  # leave the stack usable for the next scenario
                    logger.warning("heal after failure failed error=%r", exc)
            self.logs = {w.name: w.log_tail(40) for w in
                         [s.worker for s in supervisor.slots] + supervisor.standbys}
            report.topics = {"transactions": settings.topic_transactions,
                             "scores": settings.topic_scores, "dlq": settings.topic_dlq}
            if self.isolate and not self.plan.keep_topics:
                # Hundreds of leftover runs' partitions made a broker restart take 30 s.
                delete_run_topics(settings.kafka_bootstrap, settings.app_id.removeprefix("chaos-"))
        self._notes = ctx.notes
        self._judge(report, scenario, ledger, start_ms, supervisor)
        return report

    def _fresh_settings(self) -> Settings:
        tag = uuid.uuid4().hex[:8]
        s = self.base
        redis = s.redis_connection_url
        sep = "&" if "?" in redis else "?"
        # A registry of its own: corrupt-model must never touch the user's production model.
        stores = (f"file://{(s.state_dir / 'chaos-registry' / tag).resolve()},"
                  f"{redis}{sep}prefix=chaos-{tag}")
        return dataclasses.replace(
            s, app_id=f"chaos-{tag}", topic_transactions=f"chaos-tx-{tag}",
            topic_scores=f"chaos-scores-{tag}", topic_dlq=f"chaos-dlq-{tag}",
            topic_labels=f"chaos-labels-{tag}", topic_events=f"chaos-events-{tag}",
            topic_model_updates=f"chaos-model-updates-{tag}", model_stores=stores,
            chaos_hooks=1,
            # A run lasts tens of seconds: a drift window of minutes would never fill.
            drift_window_rows=min(s.drift_window_rows, 2000),
            monitoring_interval_s=min(s.monitoring_interval_s, 2.0))

    async def _drive(self, settings: Settings, scenario: Scenario, ctx: FaultContext,
                     report: ChaosReport) -> tuple[Ledger, int]:
        plan = self.plan
        phases = load_phases(plan, scenario)
        count = sum(n for n, _rate in phases)
        ds = simulate(SimulationConfig(n_customers=2000, n_terminals=4000, nb_days=60,
                                       seed=plan.seed, id_prefix=f"chaos{uuid.uuid4().hex[:6]}"))
        records: Iterator[Outgoing] = outgoing(ds, 0, min(count, len(ds)),
                                               with_labels=scenario.with_labels)
        if scenario.drift_amount_scale:
            drifted = simulate(SimulationConfig(
                n_customers=2000, n_terminals=4000, nb_days=60, seed=plan.seed,
                amount_scale=scenario.drift_amount_scale,
                id_prefix=f"chaosdrift{uuid.uuid4().hex[:6]}"))
            switch = int(plan.rate * plan.fault_at_s)
            records = itertools.chain(
                outgoing(ds, 0, switch, with_labels=False),
                outgoing(drifted, switch, min(count, len(drifted)), with_labels=False))
        if scenario.poison_every:
            records = with_bad_records(records, scenario.poison_every)
        ledger = Ledger()
        prometheus_answered = False
        kinds = {settings.topic_scores: "scores", settings.topic_dlq: "dlq"}
        alerts: dict[str, set[str]] = {"firing": set(), "pending": set()}
        async with TopicReader(settings, list(kinds)) as reader:
            producer = new_producer(settings)
            await producer.start()
            stats = ProduceStats()
            start_ms = int(time.time() * 1000)
            loop = asyncio.get_running_loop()
            t0 = loop.time()

            async def produce_phases() -> None:
                for n, rate in phases:
                    await produce_paced(
                        producer, itertools.islice(records, n),
                        topic=settings.topic_transactions, labels_topic=settings.topic_labels,
                        rate=rate, label_delay_s=1.0 if scenario.with_labels else 0.0,
                        stats=stats, tolerate_failures=True,
                        on_delivered=lambda rec, partition, offset: ledger.produced(
                            rec.value, partition, offset))

            task = asyncio.create_task(produce_phases())
            faulted = healed = False
            deadline: float | None = None
            next_alert_poll = 0.0
            try:
                while True:
                    for topic, _k, value, ts in await reader.poll(0.3):
                        ledger.observe(kinds[topic], value, ts)
                    now = loop.time() - t0
                    if not faulted and now >= plan.fault_at_s:
                        faulted = True
                        report.fault_at_s = round(now, 2)
                        if scenario.inject is not None:
                            await asyncio.to_thread(scenario.inject, ctx)
                    if (faulted and not healed and scenario.heal is not None
                            and now >= plan.fault_at_s + scenario.heal_after_s):
                        healed = True
                        await asyncio.to_thread(scenario.heal, ctx)
                        report.healed_at_s = round(loop.time() - t0, 2)
                    if now >= next_alert_poll:
                        next_alert_poll = now + 2.0
                        prometheus_answered |= await asyncio.to_thread(
                            self._observe_alerts, alerts, settings, start_ms)
                    if task.done() and (healed or scenario.heal is None):
                        task.result()
                        deadline = deadline or loop.time() + plan.drain_timeout_s
                        if ledger.complete or loop.time() > deadline:
                            break
                # Anything extra (a duplicate or a second decision) would arrive now: read
                # until every output partition is at its end and stays there.
                await read_until_settled(reader, lambda topic, value, ts: ledger.observe(
                    kinds[topic], value, ts), settle_s=plan.settle_s)
                prometheus_answered |= await asyncio.to_thread(
                    self._observe_alerts, alerts, settings, start_ms)
            finally:
                task.cancel()
                await producer.stop()
        report.alerts_fired = sorted(alerts["firing"])
        report.alerts_pending = sorted(alerts["pending"] - alerts["firing"])
        report.prometheus_answered = prometheus_answered
        report.alerts_missing = missing_alerts(scenario.expect_alerts, alerts,
                                               prometheus_answered)
        report.produce_failed = stats.failed
        return ledger, start_ms

    def _observe_alerts(self, seen: dict[str, set[str]], settings: Settings,
                        since_ms: int) -> bool:
        """Add this run's alerts, firing or pending in Prometheus now, to ``seen`` by state.

        Returns whether Prometheus answered.
        """
        url = f"http://{settings.bind_host}:{settings.prometheus_port}/api/v1/alerts"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = json.loads(resp.read())
        except (OSError, ValueError):
            return False
        for state, names in run_alerts(body, settings.app_id, since_ms).items():
            seen[state] |= names
        return True

    def _judge(self, report: ChaosReport, scenario: Scenario, ledger: Ledger, start_ms: int,
               supervisor: Supervisor) -> None:
        summary = ledger.summary()
        report.produced = int(summary["produced"])  # type: ignore[call-overload]
        report.scored = ledger.scored
        report.dead_lettered = ledger.dead_letters
        report.lost = ledger.lost()
        report.duplicates = ledger.duplicates
        report.conflicting_decisions = len(ledger.conflicting)
        report.dead_letter_errors = dict(ledger.dead_letter_errors)
        report.model_versions = dict(ledger.model_versions)
        report.degraded_scores = ledger.degraded
        report.failovers = [dataclasses.asdict(e) for e in supervisor.events]
        if supervisor.events and report.fault_at_s is not None:
            first = datetime.fromisoformat(supervisor.events[0].at).timestamp()
            report.replaced_after_s = round(first - start_ms / 1000 - report.fault_at_s, 2)
        report.timeline = timeline(ledger.scored_at_ms, start_ms)
        fault = report.fault_at_s if report.fault_at_s is not None else self.plan.fault_at_s
        report.recovery_seconds = recovery_seconds(report.timeline, fault, self.plan.rate)
        if report.healed_at_s is not None:
            report.recovery_after_heal_seconds = recovery_seconds(
                report.timeline, report.healed_at_s, self.plan.rate)
        recovered_at = (fault + report.recovery_seconds
                        if report.recovery_seconds is not None else None)
        report.p99_latency_ms = p99_by_phase(ledger.scored_at_ms, start_ms, fault, recovered_at)
        if report.healed_at_s is not None:
            before = report.p99_latency_ms.get("before") or 0.0
            report.drained_after_heal_s = drain_seconds(
                ledger.scored_at_ms, start_ms, report.healed_at_s, max(1000.0, 5 * before))
        problems = report.problems
        if report.lost:
            problems.append(f"{report.lost} records lost")
        if report.duplicates:
            problems.append(f"{report.duplicates} duplicate outputs")
        if report.conflicting_decisions:
            problems.append(f"{report.conflicting_decisions} transactions decided twice "
                            "differently")
        if report.produced == 0:
            problems.append("nothing was produced")
        if scenario.expect_failover and not supervisor.events:
            problems.append("the supervisor did not replace the faulty worker")
        if scenario.expect_no_failover and supervisor.events:
            problems.append(f"the supervisor replaced {len(supervisor.events)} worker(s) "
                            f"({', '.join(e.reason for e in supervisor.events)}): slowness "
                            "is not a fault")
        if scenario.drift_amount_scale and not (report.amount_psi or 0.0) > DRIFT_PSI:
            problems.append(f"amount drift (PSI {report.amount_psi}) not above {DRIFT_PSI}")
        if scenario.expect_gap_repair and not (report.gap_records_read
                                               and report.redelivered_dropped):
            problems.append("the workers did not report reading skipped records "
                            f"({report.gap_records_read}) and dropping repeated ones "
                            f"({report.redelivered_dropped})")
        if scenario.expect_degraded and not report.degraded_scores:
            problems.append("no score came from a fallback model")
        tampered = self._notes.get("tampered_version")
        if tampered and tampered in report.model_versions:
            problems.append(f"the tampered version {tampered} scored transactions")
        if report.recovery_seconds is None:
            problems.append("scoring never returned to the prior rate")
        if report.alerts_missing:
            problems.append(f"expected alerts neither fired nor pending: "
                            f"{', '.join(report.alerts_missing)}"
                            + ("" if report.prometheus_answered else
                               f" (Prometheus at {self.base.bind_host}:"
                               f"{self.base.prometheus_port} never answered: is the stack up?)"))
        report.passed = not problems
