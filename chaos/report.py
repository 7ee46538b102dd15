"""What a chaos run proves (ledger counts, recovery, latency, alerts) as JSON, Markdown, PNG."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: A bucket counts as "scoring at the prior rate" from this share of the pre-fault rate on.
RECOVERED_SHARE = 0.9


@dataclass
class ChaosReport:
    """The outcome of one scenario run (the JSON report's fields)."""

    scenario: str
    #: The run's consumer group (``app`` label in Prometheus; worker logs are named after it).
    run_id: str = ""
    produced: int = 0
    #: Sends the broker never acknowledged (not produced, so not owed an outcome).
    produce_failed: int = 0
    #: The simulated population (customers; twice as many terminals) and the event time, in
    #: days, that the load's transactions cover.
    customers: int | None = None
    event_days: float | None = None
    scored: int = 0
    dead_lettered: int = 0
    lost: int = 0
    duplicates: int = 0
    conflicting_decisions: int = 0
    recovery_seconds: float | None = None
    #: For faults that last until healed (a broker down): from the healing to the prior rate.
    recovery_after_heal_seconds: float | None = None
    p99_latency_ms: dict[str, float | None] = field(default_factory=dict)
    alerts_fired: list[str] = field(default_factory=list)
    alerts_expected: list[str] = field(default_factory=list)
    #: Conditions that held (the alert was pending) but not for the rule's whole ``for:``
    #: window before the run ended.
    alerts_pending: list[str] = field(default_factory=list)
    #: Expected alerts that did not fire (shortened ``for:``) or were not even pending
    #: (production rules); all of them when Prometheus never answered.
    alerts_missing: list[str] = field(default_factory=list)
    prometheus_answered: bool = False
    #: Drift alerts (firing or pending) the scenario did not inject: a failure.
    drift_alerts_unexpected: list[str] = field(default_factory=list)
    #: Features (and "score") some worker still warmed up at the end (drift not measured yet).
    drift_features_warming: list[str] = field(default_factory=list)
    #: Labels applied to merchant state, summed over the workers active at the end (scenarios
    #: with labels): far under ``produced`` means the label path fell behind.
    labels_applied: int | None = None
    #: label-crash: labels and frauds sent for its one merchant, and counted in the merchants
    #: changelog at the end (``sent``, ``sent_frauds``, ``counted``, ``counted_frauds``).
    merchant_labels: dict[str, int | None] = field(default_factory=dict)
    #: Largest PSI over the workers at the end, per measured feature and "score".
    drift_psi: dict[str, float] = field(default_factory=dict)
    #: The ``for:`` windows of the rules Prometheus ran were divided by this (1: production).
    alert_time_scale: float = 1.0
    failovers: list[dict[str, Any]] = field(default_factory=list)
    #: From the fault to the supervisor's first replacement (its failover event).
    replaced_after_s: float | None = None
    fault_at_s: float | None = None
    healed_at_s: float | None = None
    dead_letter_errors: dict[str, int] = field(default_factory=dict)
    #: Decisions per model version, and how many a fallback model gave (degraded: true).
    model_versions: dict[str, int] = field(default_factory=dict)
    degraded_scores: int = 0
    #: Largest amount PSI (live vs. the model's reference) over the workers at the end.
    amount_psi: float | None = None
    #: Summed over the workers active at the end: records the consumer skipped that the
    #: workers read from Kafka themselves, and records handed over again that they dropped.
    gap_records_read: int | None = None
    redelivered_dropped: int | None = None
    timeline: list[dict[str, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None
    passed: bool = False
    #: From the healing (for overload: the load dropping) to the last decision that waited
    #: in a backlog (slower than max(1 s, 5 × the p99 before the fault)).
    drained_after_heal_s: float | None = None
    #: Cards in the card table's changelog before the workers started (big-state runs), how
    #: long the workers took to restore them at start, and how long a worker's /ready said
    #: "restoring" after the fault (all workers summed, polled every ~0.5 s).
    preloaded_cards: int = 0
    initial_restore_s: float | None = None
    restoring_after_fault_s: float | None = None
    #: Soak runs: every ~10 s the largest worker's resident memory (MB), the largest
    #: RocksDB share and the largest memory outside RocksDB; over the run's second half the
    #: slopes of p99 latency (per-minute p99s), of resident memory and of memory outside
    #: RocksDB (the one judged: RocksDB's caches fill up to fixed caps), per minute.
    memory_mb: list[dict[str, float]] = field(default_factory=list)
    p99_slope_ms_per_min: float | None = None
    memory_slope_mb_per_min: float | None = None
    memory_other_slope_mb_per_min: float | None = None
    #: Records the workers had to drop because a newer owner of their partition fenced their
    #: transaction (summed over the active workers at the end; zombie runs).
    fenced_records: int | None = None
    #: The card table against a replay of the scored transactions (``chaos.card_replay``):
    #: cards, equal, expired, mismatched and a few examples.
    card_check: dict[str, Any] | None = None
    #: supervisor-kill: the pids of the workers the dead supervisor left running, and of those
    #: the new supervisor killed before starting its own.
    orphans: dict[str, list[int]] | None = None
    #: The run's topics by role (kept for an audit with ``--keep-topics``, else deleted).
    topics: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def markdown(self) -> str:
        """A short human summary (the timeline is in the PNG)."""
        p99 = self.p99_latency_ms
        lines = [f"# Chaos run: {self.scenario}", "",
                 f"**{'PASSED' if self.passed else 'SKIPPED' if self.skipped else 'FAILED'}**"
                 + (f": {self.skipped}" if self.skipped else ""), "",
                 "| produced | scored | dead-lettered | lost | duplicates | recovery s |",
                 "|---:|---:|---:|---:|---:|---:|",
                 f"| {self.produced} | {self.scored} | {self.dead_lettered} | {self.lost} | "
                 f"{self.duplicates} | {_fmt(self.recovery_seconds)} |", "",
                 f"p99 latency (ms): before {_fmt(p99.get('before'))}, during "
                 f"{_fmt(p99.get('during'))}, after {_fmt(p99.get('after'))}", "",
                 f"Alerts fired: {', '.join(self.alerts_fired) or 'none'}; pending (their "
                 f"`for:` window outlasted the run): {', '.join(self.alerts_pending) or 'none'}"
                 f"; expected: {', '.join(self.alerts_expected) or 'none'}; missing: "
                 f"{', '.join(self.alerts_missing) or 'none'}; drift alerts not injected: "
                 f"{', '.join(self.drift_alerts_unexpected) or 'none'}; drift still warming "
                 f"up: {', '.join(self.drift_features_warming) or 'none'}; rules' `for:` "
                 + ("as in production" if self.alert_time_scale == 1.0 else
                    f"divided by {self.alert_time_scale:g}"), "",
                 f"Drift PSI at the end (largest over the workers): {self.drift_psi}; labels "
                 f"applied to merchant state: {_fmt(self.labels_applied)}; simulated "
                 f"population: {_fmt(self.customers)} customers, the load covering "
                 f"{_fmt(self.event_days)} days of event time", "",
                 f"Model versions: {self.model_versions}; degraded scores: "
                 f"{self.degraded_scores}", "",
                 f"Offset continuity: {_fmt(self.gap_records_read)} skipped records read "
                 f"from Kafka, {_fmt(self.redelivered_dropped)} repeated records dropped", "",
                 f"Failovers: {len(self.failovers)} (first {_fmt(self.replaced_after_s)} s "
                 "after the fault)"]
        if self.healed_at_s is not None:
            lines[-1:-1] = [f"Backlog drained {_fmt(self.drained_after_heal_s)} s after the "
                            f"fault healed (at {_fmt(self.healed_at_s)} s)", ""]
        if self.memory_mb:
            rocksdb = max(m.get("max_rocksdb_mb", 0.0) for m in self.memory_mb)
            lines[-1:-1] = [f"Soak: over the second half, p99 latency moved "
                            f"{_fmt(self.p99_slope_ms_per_min)} ms/min, worker memory outside "
                            f"RocksDB {_fmt(self.memory_other_slope_mb_per_min)} MB/min, "
                            f"resident memory {_fmt(self.memory_slope_mb_per_min)} MB/min "
                            f"(RocksDB's caches at most {rocksdb:.0f} MB; "
                            f"{len(self.memory_mb)} memory samples)", ""]
        if self.card_check is not None:
            c = self.card_check
            lines[-1:-1] = [f"Card table against a replay of the scored transactions: "
                            f"{c['cards']} cards, {c['equal']} equal, {c['expired']} expired, "
                            f"{c['mismatched']} different; records fenced: "
                            f"{_fmt(self.fenced_records)}", ""]
        if self.orphans is not None:
            lines[-1:-1] = [f"Workers left running by the dead supervisor: {self.orphans['left']}"
                            f"; killed by the new one: {self.orphans['stopped']}", ""]
        if self.merchant_labels:
            m = self.merchant_labels
            lines[-1:-1] = [f"Labels for the one merchant: sent {_fmt(m.get('sent'))} "
                            f"({_fmt(m.get('sent_frauds'))} frauds), counted "
                            f"{_fmt(m.get('counted'))} ({_fmt(m.get('counted_frauds'))} "
                            "frauds) in the merchants changelog", ""]
        if self.preloaded_cards:
            lines[-1:-1] = [f"Card table: {self.preloaded_cards:,} cards preloaded, restored "
                            f"at start in {_fmt(self.initial_restore_s)} s; after the fault "
                            f"the workers restored for {_fmt(self.restoring_after_fault_s)} s",
                            ""]
        lines += [f"- slot {f['slot']}: {f['reason']} (pid {f['old_pid']} -> {f['new_pid']}, "
                  f"{'standby' if f['from_standby'] else 'cold start'})" for f in self.failovers]
        if self.problems:
            lines += ["", "Problems:"] + [f"- {p}" for p in self.problems]
        return "\n".join(lines) + "\n"

    def write(self, json_path: Path) -> list[Path]:
        """Write the JSON report, and next to it a Markdown summary and a PNG timeline."""
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(self.to_json())
        md = json_path.with_suffix(".md")
        md.write_text(self.markdown())
        written = [json_path, md]
        if self.timeline:
            png = json_path.with_suffix(".png")
            plot_timeline(self, png)
            written.append(png)
        return written


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def timeline(scored_at_ms: list[tuple[int, float]], start_ms: int,
             bucket_s: float = 1.0) -> list[dict[str, float]]:
    """Per bucket since ``start_ms``: decisions written and their p99 latency."""
    if not scored_at_ms:
        return []
    data = np.asarray(scored_at_ms, dtype=np.float64)
    t = (data[:, 0] - start_ms) / 1000.0
    idx = np.floor(t / bucket_s).astype(int)
    out = []
    for b in range(max(idx.min(), 0), idx.max() + 1):
        mask = idx == b
        lat = data[mask, 1]
        out.append({"t": b * bucket_s, "scored": float(mask.sum()) / bucket_s,
                    "p99_ms": float(np.percentile(lat, 99)) if lat.size else 0.0})
    return out


def drain_seconds(scored_at_ms: list[tuple[int, float]], start_ms: int, since_s: float,
                  slow_ms: float) -> float | None:
    """From ``since_s`` (the load dropping) to the last decision slower than ``slow_ms``.

    A decision that waited in a backlog is slow; once the backlog is gone every decision is
    fast again. 0 when nothing after ``since_s`` was slow; None without decisions.
    """
    if not scored_at_ms:
        return None
    slow = [ts / 1000 - start_ms / 1000 for ts, lat in scored_at_ms if lat > slow_ms]
    late = [t for t in slow if t >= since_s]
    return round(max(late) - since_s, 2) if late else 0.0


def recovery_seconds(series: list[dict[str, float]], fault_at_s: float,
                     rate: float) -> float | None:
    """From the fault to the first bucket that scores at least 90 % of the prior rate.

    The prior rate is the median of the buckets before the fault (or ``rate`` without any).
    A fault that never dents the rate recovers in the first bucket after it.
    """
    before = [b["scored"] for b in series if b["t"] + 1 <= fault_at_s and b["t"] >= 1]
    prior = float(np.median(before)) if before else rate
    dented = False
    for b in series:
        if b["t"] < fault_at_s:
            continue
        if b["scored"] >= RECOVERED_SHARE * prior:
            return max(b["t"] - fault_at_s, 0.0) if dented else 0.0
        dented = True
    return None


def p99_by_phase(scored_at_ms: list[tuple[int, float]], start_ms: int, fault_at_s: float,
                 recovered_at_s: float | None) -> dict[str, float | None]:
    """p99 latency of decisions written before the fault, until recovery, and after it."""
    def p99(values: list[float]) -> float | None:
        return float(np.percentile(values, 99)) if values else None

    before: list[float] = []
    during: list[float] = []
    after: list[float] = []
    end = recovered_at_s if recovered_at_s is not None else float("inf")
    for ts, lat in scored_at_ms:
        t = (ts - start_ms) / 1000.0
        (before if t < fault_at_s else during if t < end else after).append(lat)
    return {"before": p99(before), "during": p99(during), "after": p99(after)}


def plot_timeline(report: ChaosReport, path: Path) -> None:
    """Throughput and p99 latency per second, the fault and the healing marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [b["t"] for b in report.timeline]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    ax1.plot(t, [b["scored"] for b in report.timeline], color="tab:blue")
    ax1.set_ylabel("decisions / s")
    ax2.plot(t, [b["p99_ms"] for b in report.timeline], color="tab:red")
    ax2.set_ylabel("p99 latency (ms)")
    ax2.set_yscale("log")
    ax2.set_xlabel("seconds since the load started")
    for ax in (ax1, ax2):
        if report.fault_at_s is not None:
            ax.axvline(report.fault_at_s, color="black", linestyle="--", label="fault")
        if report.healed_at_s is not None:
            ax.axvline(report.healed_at_s, color="green", linestyle=":", label="healed")
    if report.fault_at_s is not None or report.healed_at_s is not None:
        ax1.legend(loc="lower left")
    ax1.set_title(f"chaos: {report.scenario} — lost {report.lost}, duplicates "
                  f"{report.duplicates}, recovery {_fmt(report.recovery_seconds)} s")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def second_half_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope (y per minute) of the points whose t (seconds) is in the second
    half of the span; None with fewer than 3 such points."""
    if not points:
        return None
    t = np.asarray([p[0] for p in points], dtype=np.float64)
    y = np.asarray([p[1] for p in points], dtype=np.float64)
    keep = t >= (t.min() + t.max()) / 2
    if keep.sum() < 3 or np.ptp(t[keep]) == 0:
        return None
    return float(np.polyfit(t[keep] / 60.0, y[keep], 1)[0])


def p99_per_minute(scored_at_ms: list[tuple[int, float]], start_ms: int) -> list[tuple[float,
                                                                                      float]]:
    """(minute start in seconds, p99 latency in ms) of each whole minute of decisions."""
    if not scored_at_ms:
        return []
    data = np.asarray(scored_at_ms, dtype=np.float64)
    minute = np.floor((data[:, 0] - start_ms) / 60_000.0).astype(int)
    out = []
    for m in range(max(minute.min(), 0), minute.max()):  # the last minute may be partial
        lat = data[minute == m, 1]
        if len(lat):
            out.append((m * 60.0, float(np.percentile(lat, 99))))
    return out

