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
import math
import shutil
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fraudstream.chaos import label_crash
from fraudstream.chaos.card_replay import check_cards
from fraudstream.chaos.faults import FaultContext, FaultUnavailable
from fraudstream.chaos.ports import RunPorts, run_ports
from fraudstream.chaos.report import (
    ChaosReport,
    drain_seconds,
    p99_by_phase,
    p99_per_minute,
    recovery_seconds,
    second_half_slope,
    timeline,
)
from fraudstream.chaos.scenarios import Scenario
from fraudstream.chaos.worker_metrics import sample_value, scrape, summed, worker_url
from fraudstream.deploy.local import LocalStack
from fraudstream.features.windows import MERCHANT_KEEP_DAYS
from fraudstream.feeds import outgoing, with_bad_records
from fraudstream.ledger import Ledger, Position, quiet_collector, seen_now_ms
from fraudstream.operations.big_state import fill_card_changelog
from fraudstream.operations.models import ensure_production
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.streaming import Outgoing, ProduceStats, TopicReader, new_producer, produce_paced
from fraudstream.workers.pool import app_datadir
from fraudstream.workers.supervisor import HealthPolicy, Supervisor
from fraudstream.workers.topics import card_changelog_spec, delete_run_topics, ensure_topics

logger = logging.getLogger(__name__)


def fault_seconds(plan: RunPlan, scenario: Scenario) -> float:
    """How long the fault lasts before it is healed: the plan's, else the scenario's."""
    return plan.fault_seconds if plan.fault_seconds is not None else scenario.heal_after_s


def load_phases(plan: RunPlan, scenario: Scenario) -> list[tuple[int, float]]:
    """(records, rate) of each stretch of the load: before the fault, during it, after it.

    A scenario without its own rates runs at ``plan.rate`` for ``plan.duration_s``. One that
    changes the rate while the fault lasts produces ``heal_after_s`` seconds' worth at the
    changed rate, then the rest of the duration at its after-rate.
    """
    if scenario.quiesce_for_fault:
        return [(int(plan.rate * plan.fault_at_s), plan.rate),
                (int(plan.rate * (plan.duration_s - plan.fault_at_s)), plan.rate)]
    if scenario.rate_during is None and scenario.rate_after is None:
        return [(int(plan.rate * plan.duration_s), plan.rate)]
    during_rate = plan.rate * (scenario.rate_during or 1.0)
    after_rate = plan.rate * (scenario.rate_after or 1.0)
    lasts = fault_seconds(plan, scenario)
    after_s = max(plan.duration_s - plan.fault_at_s - lasts, 0.0)
    return [(int(plan.rate * plan.fault_at_s), plan.rate),
            (int(during_rate * lasts), during_rate),
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
    #: Cards preloaded into the card table (None: the scenario's own number).
    preload_cards: int | None = None
    #: How long a fault that heals lasts (None: the scenario's ``heal_after_s``).
    fault_seconds: float | None = None
    #: Divide every alert rule's ``for:`` by this for the run (1: the production rules). The
    #: stack's Prometheus loads a shortened copy and gets the production rules back afterwards
    #: (``chaos.alert_windows``), so an alert that would fire after minutes shows ``fired``.
    alert_time_scale: float = 1.0
    #: Simulated customers (twice as many terminals). A run whose history features warm up
    #: must stream the population of the model it serves (another density of customers and
    #: terminals shifts the merchant features, and drift alerts fire for real):
    #: ``fraudstream chaos run --customers`` defaults to the one ``fraudstream train``
    #: simulates, ``DEMO_CUSTOMERS``. This default keeps a short run cold instead: about 1.97
    #: transactions per customer and simulated day, so 2,000 customers make a load of N
    #: transactions cover N / 3,940 days (1,000 made `make test`'s overload run, 74,400
    #: transactions, warm enough for card_avg_amount_30d to drift against the tests' model of
    #: 300 customers).
    customers: int = 2000


#: Upper bound of the stack's scrape plus evaluation interval (deploy/local: 2 s each).
PROMETHEUS_EVALUATIONS_S = 4.0

#: The PSI the drift alert fires above (monitoring/rules/fraudstream.yml).
DRIFT_PSI = 0.25


#: RocksDB's own memory as each worker exports it (memtables, block cache, table readers).
ROCKSDB_MEMORY_METRIC = "fraudstream_card_store_memory_bytes"


def worker_memory_mb(settings: Settings, supervisor: Supervisor) -> list[tuple[float, float]]:
    """(resident memory, RocksDB's share of it) in MB of each active worker: the first from
    /proc, the second from the worker's /metrics (0 when it does not answer)."""
    sizes = []
    for slot in supervisor.slots:
        proc = slot.worker.proc
        if proc is None:
            continue
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            continue
        rss = [int(line.split()[1]) / 1024.0 for line in status.splitlines()
               if line.startswith("VmRSS:")]
        if not rss:
            continue
        try:
            lines = scrape(worker_url(settings, slot.index))
        except OSError:
            lines = []
        sizes.append((rss[0], summed(lines, ROCKSDB_MEMORY_METRIC) / 1048576.0))
    return sizes


def workers_restoring(supervisor: Supervisor) -> int:
    """How many active workers' /ready say they are restoring their tables now."""
    count = 0
    for slot in supervisor.slots:
        body = slot.worker.readiness(timeout=0.5)
        if body is not None and body.get("restoring"):
            count += 1
    return count


#: "Flat" in a soak: over the run's second half, p99 latency may grow at most this many ms per
#: minute and the largest worker's memory outside RocksDB this many MB per minute (a leak of
#: 1 MB/min is 1.4 GB a day). RocksDB's block caches and memtables fill up to the caps set in
#: workers.card_store: in a 30-minute soak at 300 tx/s they grew 105 of the 111 MiB by which a
#: worker grew between minutes 10 and 19. Their level and the whole resident memory's slope
#: are reported beside it.
SOAK_MAX_P99_SLOPE_MS = 10.0
SOAK_MAX_MEMORY_SLOPE_MB = 1.0


#: Transactions per simulated customer and day (the simulator's defaults).
TX_PER_CUSTOMER_DAY = 1.97
#: The event time a soak's transactions must cover, in multiples of the merchants' bounded
#: label history (``MERCHANT_KEEP_DAYS``): with three, that state reaches its bound in the run's
#: first third, so the second half, where memory must be flat, is steady state. Covering 50.8
#: days, the merchant states filled until 79 % of the run: in a 30-minute soak memory grew
#: 9.3 MB/min in minutes 20-25 and 1.1 in the last five.
SOAK_SPAN_KEEPS = 3
#: Days simulated at least: a run streams the first transactions of the simulation.
MIN_SIMULATED_DAYS = 60


def simulated_days(count: int, customers: int) -> int:
    """Days to simulate for a run of ``count`` transactions of ``customers`` customers: what
    the load covers with a quarter to spare (few customers find few terminals near them and
    pay less often), at least ``MIN_SIMULATED_DAYS``. The population stays the plan's: more
    load covers more event time, never a denser world."""
    return max(MIN_SIMULATED_DAYS,
               math.ceil(1.25 * count / (TX_PER_CUSTOMER_DAY * max(customers, 1))))


def soak_span_problem(event_days: float | None) -> str | None:
    """Why a soak's load covered too little event time to judge memory (None: enough)."""
    need = SOAK_SPAN_KEEPS * MERCHANT_KEEP_DAYS
    if event_days is None or event_days >= 0.95 * need:
        return None
    return (f"the load covered {event_days:.0f} simulated days, and the merchant states fill "
            f"for {MERCHANT_KEEP_DAYS}: a soak needs about {need} (more transactions, or "
            "fewer customers in a model trained on as few)")


def soak_problems(report: ChaosReport, duration_s: float) -> list[str]:
    """Why a soak run's latency or memory did not stay flat (empty when they did)."""
    problems = []
    span = soak_span_problem(report.event_days)
    if span is not None:
        problems.append(span)
    p99, memory = report.p99_slope_ms_per_min, report.memory_other_slope_mb_per_min
    if p99 is None or memory is None:
        problems.append(f"a {duration_s:.0f} s soak gives too few points for slopes; run "
                        "at least 6 minutes")
        return problems
    if p99 > SOAK_MAX_P99_SLOPE_MS:
        problems.append(f"p99 latency grew {p99:.1f} ms/min over the second half (at most "
                        f"{SOAK_MAX_P99_SLOPE_MS:.0f})")
    if memory > SOAK_MAX_MEMORY_SLOPE_MB:
        problems.append(f"worker memory outside RocksDB grew {memory:.2f} MB/min over the "
                        f"second half (at most {SOAK_MAX_MEMORY_SLOPE_MB:.0f})")
    return problems


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


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
        try:
            value = sample_value(scrape(worker_url(settings, slot.index)), sample)
        except OSError:
            continue
        if value is not None:
            values.append(value)
    return values


def _worker_metrics_text(settings: Settings, supervisor: Supervisor) -> list[str]:
    """The /metrics text of every active worker that answers."""
    texts = []
    for slot in supervisor.slots:
        try:
            texts.append("\n".join(scrape(worker_url(settings, slot.index))))
        except OSError:
            continue
    return texts


def _feature_label(line: str) -> str:
    return line.split('feature="', 1)[1].split('"', 1)[0]


def features_warming(texts: Sequence[str]) -> list[str]:
    """Features (and "score") whose drift some worker does not measure yet (warm-up)."""
    prefix = "fraudstream_feature_drift_warming_seconds{"
    return sorted({_feature_label(line) for text in texts for line in text.splitlines()
                   if line.startswith(prefix) and 'feature="' in line})


def drift_psi(texts: Sequence[str]) -> dict[str, float]:
    """The largest PSI over the workers per measured feature, and "score"."""
    out: dict[str, float] = {}
    for text in texts:
        for line in text.splitlines():
            if 'method="psi"' not in line:
                continue
            if line.startswith("fraudstream_feature_drift{"):
                name = _feature_label(line)
            elif line.startswith("fraudstream_score_drift{"):
                name = "score"
            else:
                continue
            value = float(line.rsplit(" ", 1)[1])
            out[name] = round(max(out.get(name, value), value), 4)
    return out


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


def is_drift_alert(name: str) -> bool:
    """Whether a reported alert name is a drift alert (feature or score)."""
    return name.startswith(("FraudstreamFeatureDrift", "FraudstreamScoreDrift"))


def unexpected_drift_alerts(allowed: Sequence[str], seen: dict[str, set[str]]) -> list[str]:
    """Drift alerts, firing or pending, that the scenario did not inject (sorted)."""
    return sorted(n for n in seen["firing"] | seen["pending"]
                  if is_drift_alert(n) and n not in allowed)


def missing_alerts(expected: Sequence[str], seen: dict[str, set[str]],
                   answered: bool, must_fire: bool) -> list[str]:
    """Expected alerts that did not fire (``must_fire``: the run's rules had shortened
    ``for:`` windows, so a run lasting seconds sees them fire) or were not even pending
    (production windows outlast a short run); every one of them when Prometheus never
    answered (an alert check that could not ask anybody proves nothing)."""
    if not answered:
        return sorted(expected)
    shown = seen["firing"] if must_fire else seen["firing"] | seen["pending"]
    return sorted(set(expected) - shown)


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


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` unless it has ended, wait for it, and raise what it failed with."""
    if not task.done():
        task.cancel()
        await asyncio.wait([task])
    error = None if task.cancelled() else task.exception()
    if error is not None:
        raise error


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
        #: Produced transaction values by position (runs that check the card table).
        self._values: dict[Position, bytes] = {}
        #: What the running Prometheus divides the rules' ``for:`` by in this run (1: it
        #: evaluates the production rules).
        self._alert_time_scale = 1.0
        #: The ports this run's supervisor and workers serve on, held while ``run`` runs.
        self._ports: RunPorts | None = None

    def run(self, scenario: Scenario) -> ChaosReport:
        """Run one scenario end to end and judge it (one run at a time per state dir).

        Raises ``ChaosBusy`` while another run holds the state dir: two runs would fight over
        the workers' ports and the brokers; ``ChaosPortsTaken`` at once (before anything
        starts) when no ports apart from the app's are free for the run's servers.
        """
        with (exclusive_run(self.base.state_dir), self._own_ports(),
              self._alert_rules() as shortened):
            self._alert_time_scale = self.plan.alert_time_scale if shortened else 1.0
            return self._run(scenario)

    @contextlib.contextmanager
    def _own_ports(self) -> Iterator[None]:
        """Hold ports of its own for the run's supervisor and workers while the block runs.

        Inheriting the app's (FRAUDSTREAM_WORKER_WEB_PORT, FRAUDSTREAM_SUPERVISOR_PORT) made
        every worker die at start next to a running ``supervise`` or ``demo``: a crash loop,
        never a result. A run on the app's own topics (``isolate`` off) keeps its ports.
        """
        if not self.isolate:
            yield
            return
        with run_ports(self.base, self.plan.workers) as ports:
            self._ports = ports
            try:
                yield
            finally:
                self._ports = None

    @contextlib.contextmanager
    def _alert_rules(self) -> Iterator[bool]:
        """The stack's Prometheus on rules with ``for:`` shortened by the plan's scale, if any;
        yields whether it runs them."""
        if self.plan.alert_time_scale == 1.0 or self.stack is None:
            yield False
            return
        from fraudstream.chaos.alert_windows import shortened_for_windows

        with shortened_for_windows(self.stack, self.plan.alert_time_scale,
                                   self.base.state_dir / "chaos-rules") as took:
            yield took

    def _run(self, scenario: Scenario) -> ChaosReport:
        """Run one scenario end to end and judge it.

        A scenario that needs three brokers, on a stack with fewer, runs on a three-node Kafka
        of its own (started under the state dir, stopped afterwards).
        """
        if scenario.kafka_nodes > 1 and (self.stack is None
                                         or self.stack.config.kafka_nodes < scenario.kafka_nodes):
            with self.on_three_nodes() as inner:
                inner._ports = self._ports
                report = inner._run(scenario)
                self.logs = inner.logs
                return report
        settings = self._fresh_settings() if self.isolate else self.base
        self._values = {}
        report = ChaosReport(scenario.name, run_id=settings.app_id,
                             alerts_expected=list(scenario.expect_alerts),
                             alert_time_scale=self._alert_time_scale)
        cards = (self.plan.preload_cards if self.plan.preload_cards is not None
                 else scenario.preload_cards)
        ensure_topics(settings, [card_changelog_spec(settings)] if cards else None)
        ensure_production(settings)
        if cards:
            logger.info("filling the card table cards=%d", cards)
            asyncio.run(fill_card_changelog(settings, 0, cards))
            report.preloaded_cards = cards
        supervisor = Supervisor(settings, self.plan.workers, self.plan.standbys, self.policy)
        supervisor.serve_metrics(required=False)
        supervisor.start()
        ctx = FaultContext(supervisor, self.stack, settings)
        try:
            started = time.monotonic()
            # A big card table is restored from its whole changelog at the first start
            # (measured: roughly 5,000 records/s per busy 2-core machine).
            supervisor.wait_ready(timeout=180 + cards / 2_000)
            if cards:
                report.initial_restore_s = round(time.monotonic() - started, 1)
            thread = supervisor.run_in_thread()
            try:
                with quiet_collector():
                    ledger, start_ms = asyncio.run(self._drive(settings, scenario, ctx, report))
                supervisor = ctx.workers()  # a new one if the scenario replaced it
                report.gap_records_read = summed_worker_metric(
                    settings, supervisor, "fraudstream_offsets_gap_filled_total")
                report.redelivered_dropped = summed_worker_metric(
                    settings, supervisor, "fraudstream_offsets_redelivered_total")
                texts = _worker_metrics_text(settings, supervisor)
                report.drift_features_warming = features_warming(texts)
                report.drift_psi = drift_psi(texts)
                if scenario.expect_fenced:
                    report.fenced_records = summed_worker_metric(
                        settings, supervisor, "fraudstream_fenced_records_total")
                if scenario.check_cards:
                    try:
                        check = check_cards(settings, self._values, ledger.score_positions,
                                            ledger.decisions, timeout_s=120 + cards / 5_000)
                        report.card_check = dataclasses.asdict(check)
                    except Exception as exc:  # judged as "not checked"
                        logger.warning("card table not checked error=%r", exc)
                if scenario.with_labels:
                    report.labels_applied = summed_worker_metric(
                        settings, supervisor, 'fraudstream_labels_applied_total{outcome="applied"}')
                if scenario.merchant_label_rate:
                    ctx.notes["labels_counted"] = asyncio.run(label_crash.settled_counts(
                        settings, label_crash.merchant_of(settings)))
                if scenario.drift_amount_scale:
                    report.amount_psi = max_worker_metric(
                        settings, supervisor, 'fraudstream_feature_drift{feature="amount",'
                        'method="psi"}')
            finally:
                ctx.workers().request_stop()
                for running in (thread, ctx.notes.get("supervisor_thread")):
                    if running is not None:
                        running.join(10)
        except FaultUnavailable as exc:
            report.skipped = str(exc)
            return report
        finally:
            supervisor = ctx.workers()
            supervisor.stop()
            if "old_supervisor" in ctx.notes:
                ctx.notes["old_supervisor"].stop()  # reaps the processes it had started
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
                delete_run_topics(settings, settings.app_id.removeprefix("chaos-"),
                                  client_id="fraudstream-chaos")
                # With the topics gone, the workers' local card tables are of no use either.
                shutil.rmtree(app_datadir(settings), ignore_errors=True)
        self._notes = ctx.notes
        self._judge(report, scenario, ledger, start_ms, supervisor)
        return report

    @contextlib.contextmanager
    def on_three_nodes(self) -> Iterator[ChaosRunner]:
        """A runner like this one on a three-node Kafka of its own (replication 3), started
        under the state dir and stopped when the block ends; several runs may share it."""
        from fraudstream.chaos.three_nodes import three_node_kafka

        with three_node_kafka(self.base.state_dir / "chaos-kafka-3", self.base.bind_host,
                              self.base.kafka_port) as kafka3:
            yield ChaosRunner(
                dataclasses.replace(self.base, bootstrap_servers=kafka3.bootstrap,
                                    kafka_port=kafka3.config.kafka_port, kafka_nodes=3,
                                    replication_factor=3),
                kafka3, self.plan, self.policy, self.isolate)

    def _fresh_settings(self) -> Settings:
        """The base settings with the run's own app id, topics, registry and ports."""
        if self._ports is None:
            raise RuntimeError("a chaos run picks its ports in run(); call run(), not _run()")
        tag = uuid.uuid4().hex[:8]
        s = self.base
        redis = s.redis_connection_url
        sep = "&" if "?" in redis else "?"
        # A registry of its own: corrupt-model must never touch the user's production model.
        stores = (f"file://{(s.state_dir / 'chaos-registry' / tag).resolve()},"
                  f"{redis}{sep}prefix=chaos-{tag}")
        return dataclasses.replace(
            self._ports.apply(s), app_id=f"chaos-{tag}", topic_transactions=f"chaos-tx-{tag}",
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
        ds = simulate(SimulationConfig(n_customers=plan.customers,
                                       n_terminals=2 * plan.customers,
                                       nb_days=simulated_days(count, plan.customers),
                                       seed=plan.seed, id_prefix=f"chaos{uuid.uuid4().hex[:6]}"))
        streamed = min(count, len(ds))
        report.customers = plan.customers
        if streamed:
            report.event_days = round(
                float(ds.timestamp_s[streamed - 1] - ds.timestamp_s[0]) / 86_400, 1)
        records: Iterator[Outgoing] = outgoing(ds, 0, streamed,
                                               with_labels=scenario.with_labels)
        if scenario.drift_amount_scale:
            drifted = simulate(SimulationConfig(
                n_customers=plan.customers, n_terminals=2 * plan.customers,
                nb_days=simulated_days(count, plan.customers), seed=plan.seed,
                amount_scale=scenario.drift_amount_scale,
                id_prefix=f"chaosdrift{uuid.uuid4().hex[:6]}"))
            switch = int(plan.rate * plan.fault_at_s)
            records = itertools.chain(
                outgoing(ds, 0, switch, with_labels=scenario.with_labels),
                outgoing(drifted, switch, min(count, len(drifted)),
                         with_labels=scenario.with_labels))
        if scenario.poison_every:
            records = with_bad_records(records, scenario.poison_every)
        ledger = Ledger(own_only=not self.isolate)
        prometheus_answered = False
        kinds = {settings.topic_scores: "scores", settings.topic_dlq: "dlq"}
        alerts: dict[str, set[str]] = {"firing": set(), "pending": set()}
        ctx.ledger = ledger
        # On the run's own topics every output is the run's; on shared ones (isolate off) the
        # reader starts at their ends and the ledger keeps only this run's records' outputs.
        async with TopicReader(settings, list(kinds), from_beginning=self.isolate) as reader:
            producers = [new_producer(settings)]
            await producers[0].start()
            stats = ProduceStats()
            start_ms = int(time.time() * 1000)
            loop = asyncio.get_running_loop()
            t0 = loop.time()

            def on_delivered(rec: Outgoing, partition: int, offset: int) -> None:
                ledger.produced(rec.value, partition, offset)
                if scenario.check_cards:
                    self._values[ledger.position(partition, offset)] = rec.value

            async def quiesce_and_inject() -> None:
                """Wait until every record so far has its output, inject the fault, and go on
                with a new producer (one that never wrote to what the fault changed)."""
                deadline = loop.time() + plan.drain_timeout_s
                while not ledger.complete and loop.time() < deadline:
                    await asyncio.sleep(0.2)
                report.fault_at_s = round(loop.time() - t0, 2)
                if scenario.inject is not None:
                    await asyncio.to_thread(scenario.inject, ctx)
                await producers[-1].stop()
                producers.append(new_producer(settings))
                await producers[-1].start()

            async def produce_phases() -> None:
                for i, (n, rate) in enumerate(phases):
                    if i == 1 and scenario.quiesce_for_fault:
                        await quiesce_and_inject()
                    await produce_paced(
                        producers[-1], itertools.islice(records, n),
                        topic=settings.topic_transactions, labels_topic=settings.topic_labels,
                        rate=rate, label_delay_s=1.0 if scenario.with_labels else 0.0,
                        stats=stats, tolerate_failures=True,
                        on_delivered=on_delivered)

            task = asyncio.create_task(produce_phases())
            labels = asyncio.create_task(label_crash.send_labels(
                settings, label_crash.merchant_of(settings), plan.duration_s,
                scenario.merchant_label_rate)) if scenario.merchant_label_rate else None
            restoring_s = 0.0
            last_look = loop.time()
            next_memory_sample = 0.0
            faulted = healed = False
            deadline: float | None = None
            next_alert_poll = 0.0

            async def read_outputs() -> None:
                # A task of its own: a score's latency ends when it is seen, so the loop's own
                # waits below (alert queries, probes) must not hold the reading up.
                while True:
                    polled = await reader.poll(0.3)
                    seen = seen_now_ms()
                    for topic, _k, value, ts in polled:
                        ledger.observe(kinds[topic], value, ts, seen)

            reading = asyncio.create_task(read_outputs())
            try:
                while True:
                    await asyncio.sleep(0.3)
                    if reading.done():
                        reading.result()
                    now = loop.time() - t0
                    if (not faulted and now >= plan.fault_at_s
                            and not scenario.quiesce_for_fault):
                        faulted = True
                        report.fault_at_s = round(now, 2)
                        if scenario.inject is not None:
                            await asyncio.to_thread(scenario.inject, ctx)
                    if (faulted and not healed and scenario.heal is not None
                            and now >= plan.fault_at_s + fault_seconds(plan, scenario)):
                        healed = True
                        await asyncio.to_thread(scenario.heal, ctx)
                        report.healed_at_s = round(loop.time() - t0, 2)
                    if scenario.soak and now >= next_memory_sample:
                        next_memory_sample = now + 10.0
                        sizes = await asyncio.to_thread(worker_memory_mb, ctx.settings,
                                                        ctx.workers())
                        if sizes:
                            report.memory_mb.append({
                                "t": round(now, 1), "max_mb": round(max(r for r, _ in sizes), 1),
                                "sum_mb": round(sum(r for r, _ in sizes), 1),
                                "max_rocksdb_mb": round(max(d for _, d in sizes), 1),
                                "max_other_mb": round(max(r - d for r, d in sizes), 1)})
                    if faulted and report.preloaded_cards:
                        seen = await asyncio.to_thread(workers_restoring, ctx.workers())
                        restoring_s += (loop.time() - last_look) * seen
                        last_look = loop.time()
                    if now >= next_alert_poll:
                        next_alert_poll = now + 2.0
                        prometheus_answered |= await asyncio.to_thread(
                            self._observe_alerts, alerts, settings, start_ms)
                    if task.done() and (healed or scenario.heal is None):
                        task.result()
                        deadline = deadline or loop.time() + plan.drain_timeout_s
                        if ledger.complete or loop.time() > deadline:
                            break
                if labels is not None:
                    ctx.notes["labels_sent"] = await labels
                await stop_task(reading)
                # Anything extra (a duplicate or a second decision) would arrive now: read
                # until every output partition is at its end and stays there.
                if not await reader.read_until_settled(
                        lambda topic, _key, value, ts: ledger.observe(kinds[topic], value, ts,
                                                                      seen_now_ms()),
                        settle_s=plan.settle_s):
                    logger.warning("outputs did not settle; the ledger may be incomplete")
                prometheus_answered |= await asyncio.to_thread(
                    self._observe_alerts, alerts, settings, start_ms)
                await self._await_pending(scenario, alerts, settings, start_ms)
            finally:
                await stop_task(reading)
                task.cancel()
                if labels is not None:
                    labels.cancel()
                await producers[-1].stop()
        if report.preloaded_cards:
            report.restoring_after_fault_s = round(restoring_s, 1)
        report.alerts_fired = sorted(alerts["firing"])
        report.alerts_pending = sorted(alerts["pending"] - alerts["firing"])
        report.prometheus_answered = prometheus_answered
        report.alerts_missing = missing_alerts(
            scenario.expect_alerts, alerts, prometheus_answered,
            must_fire=report.alert_time_scale != 1.0)
        report.drift_alerts_unexpected = unexpected_drift_alerts(scenario.drift_allowed, alerts)
        report.produce_failed = stats.failed
        return ledger, start_ms

    async def _await_pending(self, scenario: Scenario, seen: dict[str, set[str]],
                             settings: Settings, since_ms: int) -> None:
        """With shortened ``for:`` windows, give expected alerts that are pending the rest of
        their window (the longest shortened ``for:`` plus a few evaluations) to fire.

        The workers are still up and their gauges unchanged, so a pending alert whose
        condition holds fires; one whose condition stopped holding stays pending.
        """
        scale = self.plan.alert_time_scale
        if scale == 1.0 or self.stack is None:
            return
        from fraudstream.chaos.alert_windows import longest_for_seconds

        deadline = time.monotonic() + longest_for_seconds(self.stack.prometheus.rules_dir) / scale \
            + 3 * PROMETHEUS_EVALUATIONS_S
        while (set(scenario.expect_alerts) & (seen["pending"] - seen["firing"])
               and time.monotonic() < deadline):
            await asyncio.sleep(2.0)
            await asyncio.to_thread(self._observe_alerts, seen, settings, since_ms)

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
               supervisor: Supervisor | None) -> None:
        """Fill ``report`` from the ledger and list what failed; ``supervisor`` is None when
        the workers were not this run's (a container deployment)."""
        events = supervisor.events if supervisor is not None else []
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
        report.failovers = [dataclasses.asdict(e) for e in events]
        if events and report.fault_at_s is not None:
            first = datetime.fromisoformat(events[0].at).timestamp()
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
        if (scenario.max_recovery_s is not None
                and (report.recovery_seconds is None
                     or report.recovery_seconds > scenario.max_recovery_s)):
            problems.append(f"scoring was not back within {scenario.max_recovery_s:.0f} s of "
                            f"the fault (recovery {_seconds(report.recovery_seconds)})")
        if scenario.expect_failover and not events:
            problems.append("the supervisor did not replace the faulty worker")
        if scenario.expect_no_failover and events:
            problems.append(f"the supervisor replaced {len(events)} worker(s) "
                            f"({', '.join(e.reason for e in events)}): slowness "
                            "is not a fault")
        if scenario.soak:
            report.p99_slope_ms_per_min = second_half_slope(
                p99_per_minute(ledger.scored_at_ms, start_ms))
            report.memory_slope_mb_per_min = second_half_slope(
                [(m["t"], m["max_mb"]) for m in report.memory_mb])
            report.memory_other_slope_mb_per_min = second_half_slope(
                [(m["t"], m["max_other_mb"]) for m in report.memory_mb])
            problems.extend(soak_problems(report, self.plan.duration_s))
        if scenario.drift_amount_scale and not (report.amount_psi or 0.0) > DRIFT_PSI:
            problems.append(f"amount drift (PSI {report.amount_psi}) not above {DRIFT_PSI}")
        if scenario.expect_gap_repair and not (report.gap_records_read
                                               and report.redelivered_dropped):
            problems.append("the workers did not report reading skipped records "
                            f"({report.gap_records_read}) and dropping repeated ones "
                            f"({report.redelivered_dropped})")
        if scenario.expect_fenced and not report.fenced_records:
            problems.append(f"no record was fenced ({report.fenced_records}): the "
                            "frozen worker never wrote after losing its partitions, so the run "
                            "did not test the fence")
        check = report.card_check
        if scenario.check_cards and (check is None or check["mismatched"] or not check["cards"]):
            problems.append("the card table differs from a replay of the scored transactions: "
                            + ("not checked" if check is None else
                               f"{check['mismatched']} of {check['cards']} cards; "
                               + "; ".join(check["examples"])))
        if scenario.merchant_label_rate:
            sent = self._notes.get("labels_sent")
            counted = self._notes.get("labels_counted")
            report.merchant_labels = {
                "sent": sent and sent.labels, "sent_frauds": sent and sent.frauds,
                "counted": counted and counted.labels,
                "counted_frauds": counted and counted.frauds}
            problems.extend(label_crash.problems(sent, counted))
        if scenario.expect_degraded and not report.degraded_scores:
            problems.append("no score came from a fallback model")
        report.orphans = self._notes.get("orphans")
        if report.orphans is not None and (not report.orphans["left"] or set(
                report.orphans["left"]) - set(report.orphans["stopped"])):
            problems.append(f"the new supervisor did not stop every worker left running "
                            f"({report.orphans})")
        tampered = self._notes.get("tampered_version")
        if tampered and tampered in report.model_versions:
            problems.append(f"the tampered version {tampered} scored transactions")
        if report.recovery_seconds is None:
            problems.append("scoring never returned to the prior rate")
        if report.drift_alerts_unexpected:
            problems.append("drift alerts without injected drift (firing or pending): "
                            + ", ".join(report.drift_alerts_unexpected))
        if report.alerts_missing:
            problems.append("expected alerts " + ("that did not fire (shortened `for:`): "
                                                  if report.alert_time_scale != 1.0 else
                                                  "neither fired nor pending: ")
                            + ", ".join(report.alerts_missing)
                            + ("" if report.prometheus_answered else
                               f" (Prometheus at {self.base.bind_host}:"
                               f"{self.base.prometheus_port} never answered: is the stack up?)"))
        report.passed = not problems
