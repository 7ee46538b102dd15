"""The named failures: what each injects, how it heals, and which alerts it should raise."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass

from fraudstream.chaos import label_crash
from fraudstream.chaos.faults import (
    FaultContext,
    continue_worker,
    freeze_unwatched,
    promote_tampered_model,
    recreate_input_topic,
    replace_supervisor,
    set_delivery_fault,
    set_model_fault,
    signal_worker,
    start_broker,
    start_cpu_hogs,
    start_redis,
    stop_broker,
    stop_cpu_hogs,
    stop_redis,
    thaw_zombie,
)


@dataclass(frozen=True)
class Scenario:
    """A fault, its healing, and what must hold afterwards."""

    name: str
    description: str
    inject: Callable[[FaultContext], None] | None
    heal: Callable[[FaultContext], None] | None = None
    #: Seconds between injecting the fault and healing it.
    heal_after_s: float = 0.0
    #: Malformed records mixed into the load (one per ``poison_every`` good ones); 0 = none.
    poison_every: int = 0
    #: Alert names that should fire in Prometheus during the run (checked when rules exist).
    expect_alerts: tuple[str, ...] = ()
    #: The supervisor should replace a worker.
    expect_failover: bool = False
    #: Kafka nodes the scenario needs (the runner starts a three-node Kafka if the stack has
    #: fewer).
    kafka_nodes: int = 1
    #: Some scores should come from a fallback model (degraded: true).
    expect_degraded: bool = False
    #: From the fault on, the load comes from a simulation whose amounts are this many times
    #: larger (data drift); 0 = no drift.
    drift_amount_scale: float = 0.0
    #: The workers should report reading skipped records and dropping repeated ones.
    expect_gap_repair: bool = False
    #: The load while the fault lasts and after it is healed, as multiples of the run's rate
    #: (None: unchanged). Overload scenarios raise the first and lower the second.
    rate_during: float | None = None
    rate_after: float | None = None
    #: Slowness is not a fault: the supervisor must replace no worker.
    expect_no_failover: bool = False
    #: Drift alerts this scenario may raise, by name as the runner reports them
    #: (``FraudstreamFeatureDrift[amount]``, ``FraudstreamScoreDrift``); any other drift alert,
    #: firing or pending, fails the run: without injected drift there must be none.
    drift_allowed: tuple[str, ...] = ()
    #: Publish each transaction's label too (one per transaction, a second later), as the
    #: demo does: the label path then competes with scoring for the workers' time.
    with_labels: bool = False
    #: Cards written to the card table's changelog before the workers start (big state);
    #: ``fraudstream chaos run --cards`` overrides it.
    preload_cards: int = 0
    #: Scoring must be back at its prior rate within this many seconds of the fault.
    max_recovery_s: float | None = None
    #: A long steady run: sample each worker's memory and judge whether p99 latency and
    #: memory stay flat (slopes over the run's second half).
    soak: bool = False
    #: The run's length when ``--duration`` is not given (seconds).
    default_duration_s: float | None = None
    #: A worker writes after losing its partitions: some of its records must have been fenced
    #: (else the run did not test what it claims), and the card table must equal a replay.
    expect_fenced: bool = False
    check_cards: bool = False
    #: The load stops before the fault until every record so far has its output, and goes on
    #: afterwards with a new producer (the fault changes what the producer wrote to).
    quiesce_for_fault: bool = False
    #: Labels a second for one merchant alongside the load; the merchant's counts must end
    #: equal to the labels sent (chaos.label_crash); 0 = none.
    merchant_label_rate: float = 0.0


#: What amounts ×5 legitimately moves: the amount itself, every feature computed from it, and
#: the score (amount is among the model's strongest inputs).
AMOUNT_FAMILY = (
    *(f"FraudstreamFeatureDrift[{f}]" for f in (
        "amount", "log_amount", "card_avg_amount_1d", "card_avg_amount_7d",
        "card_avg_amount_30d", "card_amount_to_avg_30d", "card_amount_to_avg_7_30d")),
    "FraudstreamScoreDrift",
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("kill-worker", "SIGKILL one active worker; a warm standby takes its slot",
             lambda ctx: signal_worker(ctx, signal.SIGKILL),
             expect_alerts=("FraudstreamWorkerFailover",), expect_failover=True),
    Scenario("label-crash", f"{label_crash.RATE} labels/s for one merchant, SIGKILL the "
             "worker that applies them (the owner of the merchant's partition); a standby "
             "takes its slot. Pass: the merchant's counts in the merchants changelog (read "
             "committed) equal the labels and frauds sent",
             label_crash.kill_merchant_owner, expect_alerts=("FraudstreamWorkerFailover",),
             expect_failover=True, merchant_label_rate=label_crash.RATE),
    Scenario("big-state-kill", "fill the card table with 1,000,000 cards, then SIGKILL one "
             "active worker: the standby that takes its slot opens the card table its "
             "predecessor kept on local disk (RocksDB) and reads only the changelog's tail; "
             "scoring must be back within 30 s",
             lambda ctx: signal_worker(ctx, signal.SIGKILL),
             expect_alerts=("FraudstreamWorkerFailover",), expect_failover=True,
             preload_cards=1_000_000, max_recovery_s=30.0),
    Scenario("soak", "no fault: a long steady run with a label per transaction (give --rate "
             "at about 60 % of the measured capacity; 30 minutes unless --duration says "
             "otherwise); p99 latency and every worker's memory outside RocksDB's capped "
             "caches must stay flat over the second half (slopes in the report, with the "
             "resident memory's), no worker replaced",
             None, with_labels=True, expect_no_failover=True, soak=True,
             default_duration_s=1800.0),
    Scenario("kill-worker-3-brokers", "SIGKILL one active worker on a three-node cluster "
             "(replication 3, min.insync.replicas 2: every transaction and offset commit "
             "waits for two replicas); a warm standby takes its slot",
             lambda ctx: signal_worker(ctx, signal.SIGKILL), expect_failover=True,
             kafka_nodes=3, check_cards=True),
    Scenario("hang-worker", "SIGSTOP one active worker (alive but frozen); the supervisor "
             "detects the hang and replaces it",
             lambda ctx: signal_worker(ctx, signal.SIGSTOP), continue_worker, heal_after_s=15,
             expect_alerts=("FraudstreamWorkerFailover",), expect_failover=True),
    Scenario("zombie", "SIGSTOP one active worker in the middle of a batch for 15 s with "
             "nobody to kill it (the supervisor leaves its slot alone): the group moves its "
             "partitions once its 6 s session expires, then it wakes up and tries to finish "
             "its batch; its transactions are fenced, nothing it writes becomes visible, and "
             "the card table equals a replay of the scored transactions",
             freeze_unwatched, thaw_zombie, heal_after_s=15,
             expect_fenced=True, check_cards=True),
    Scenario("supervisor-kill", "the supervisor dies under load (it stops without stopping "
             "its workers, as a SIGKILL leaves them) and a new one starts: it kills the "
             "workers left running and starts its own, which take the same slots over",
             replace_supervisor, check_cards=True),
    Scenario("recreate-topic", "delete the transactions topic and create it again while "
             "scores, dead letters and the card changelog stay (once every record so far has "
             "its output); offsets start over, so every new record sits at an offset an old "
             "output names: each must still get its own output",
             recreate_input_topic, quiesce_for_fault=True),
    Scenario("stop-worker", "SIGTERM one active worker (a graceful stop, as in a deploy); "
             "the supervisor hands its slot to a standby",
             lambda ctx: signal_worker(ctx, signal.SIGTERM), expect_failover=True),
    Scenario("restart-broker", "stop the (last) Kafka broker for 10 s and start it again; "
             "on one node every client waits and resumes by itself",
             lambda ctx: stop_broker(ctx, hard=False), start_broker, heal_after_s=10),
    Scenario("kill-broker", "SIGKILL one broker of a three-node cluster (replication 3, "
             "min.insync.replicas 2) and restart it 15 s later",
             lambda ctx: stop_broker(ctx, hard=True), start_broker, heal_after_s=15,
             kafka_nodes=3),
    Scenario("redis-down", "stop Redis for 15 s: scoring goes on (features live in Faust "
             "tables, the model is in memory)", stop_redis, start_redis, heal_after_s=15),
    Scenario("corrupt-model", "promote a version whose bytes are then tampered with in every "
             "store; the workers refuse it and keep serving the current model",
             promote_tampered_model, expect_alerts=("FraudstreamModelRefused",)),
    Scenario("slow-model", "make the model take 2 s per batch for 15 s; batches over "
             "FRAUDSTREAM_MODEL_TIMEOUT_S are scored by the fallback (degraded: true)",
             lambda ctx: set_model_fault(ctx, 2.0), lambda ctx: set_model_fault(ctx, 0.0),
             heal_after_s=15, expect_alerts=("FraudstreamScoringDegraded",),
             expect_degraded=True),
    Scenario("skip-records", "every active worker's consumer skips 300 records and hands "
             "100 over a second time (what a stale read position does); the workers' offset "
             "continuity check reads the skipped ones from Kafka and drops the repeats",
             lambda ctx: set_delivery_fault(ctx, withhold=300, repeat=100),
             expect_gap_repair=True),
    Scenario("drift", "from the fault on, genuine amounts are 5 times larger (the simulator's "
             "amount_scale): the workers' amount drift (PSI) must rise above 0.25, and only "
             "the amount family may drift",
             None, drift_amount_scale=5.0, expect_alerts=("FraudstreamFeatureDrift[amount]",),
             drift_allowed=AMOUNT_FAMILY),
    Scenario("overload", "for 20 s the input (with one label per transaction) arrives at four "
             "times the run's rate (give --rate at about half the measured capacity: twice the "
             "capacity then), then at half the rate: the backlog grows and drains, no worker "
             "is replaced",
             None, heal=lambda ctx: None, heal_after_s=20, rate_during=4.0, rate_after=0.5,
             expect_alerts=("FraudstreamConsumerLagGrowing",), expect_no_failover=True,
             with_labels=True),
    Scenario("cpu-starve", "busy-loop processes on every core for 20 s (the workers get about "
             "half the CPU): scoring slows, lag grows and drains, no worker is replaced",
             start_cpu_hogs, stop_cpu_hogs, heal_after_s=20, expect_no_failover=True),
    Scenario("poison", "a burst of malformed records (bad JSON, missing and wrong-typed "
             "fields, absurd timestamps, duplicate ids) mixed into the load; each is "
             "dead-lettered with a reason, nothing else changes",
             None, poison_every=10, expect_alerts=("FraudstreamDeadLetterRateHigh",)),
)}


def resolve(name: str) -> list[Scenario]:
    """The scenarios ``name`` stands for (``all``: every one but the long soak), or a KeyError
    naming the choices."""
    if name == "all":
        return [s for s in SCENARIOS.values() if not s.soak]
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; choose from all, {', '.join(SCENARIOS)}")
    return [SCENARIOS[name]]
