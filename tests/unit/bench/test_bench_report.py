"""The benchmark's printed report: every figure with the load and the raw loop beside it."""

from __future__ import annotations

import pytest

from fraudstream.bench.harness import machine_load
from fraudstream.commands.bench_cmd import print_report


def test_every_figure_is_printed_with_its_load_and_the_raw_loop_of_the_run(
        capsys: pytest.CaptureFixture[str]) -> None:
    report = {
        "records": 60_000, "cores": 2.0,
        "throughput_tx_per_s": {"raw aiokafka loop": 4103.0, "fraudstream 2 workers": 2998.0},
        "ratios": {"2_workers_vs_raw_loop": 0.731},
        "latency_ms": {"2 worker(s) @ 1,000/s": {
            "p50": 40.0, "p99": 319.0, "max": 400.0,
            "segments": {"queued": {"p50": 16.0, "p99": 80.0},
                         "scoring": {"p50": 4.0, "p99": 30.0},
                         "committed": {"p50": 11.0, "p99": 40.0}}}},
        "load_avg_1m": {"raw aiokafka loop": 1.5, "fraudstream 2 workers": 2.25,
                        "2 worker(s) @ 1,000/s": 3.0},
    }
    print_report(report)
    out = capsys.readouterr().out
    assert "(raw loop 4,103 tx/s in this run)" in out
    assert f"{'fraudstream 2 workers':<36} {2998:>10,} tx/s   load 2.25" in out
    assert "p99   319.0 ms   load 3.00" in out
    assert "2 cores" in out
    assert "queued p50 16 / p99 80 ms, scoring p50 4 / p99 30 ms, committed p50 11 / p99 40 ms" \
        in out


def test_machine_load_names_the_load_average_and_the_cores() -> None:
    load = machine_load()
    assert load["load_avg_1m"] >= 0 and load["cores"] >= 1


def test_a_scores_latency_is_split_at_its_batch_start_and_its_append() -> None:
    from typing import cast

    from fraudstream.bench.harness import Latencies
    from fraudstream.contracts import Score

    lat = Latencies()
    midnight = 1_796_256_000_000  # 2026-12-03T00:00:00Z, in milliseconds
    score = cast(Score, {"scored_at": "2026-12-03T00:00:00.020Z", "ingested_at_ms": midnight})
    lat.add(score, midnight + 25, midnight + 40.0)
    assert lat.total == [40.0]
    assert {k: v[0] for k, v in lat.segments.items()} == pytest.approx(
        {"queued": 20.0, "scoring": 5.0, "committed": 15.0})


def test_a_section_is_printed_only_when_the_run_measured_for_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    # `--contenders ''`: latency runs only; the throughput and ratio headings had nothing
    # under them.
    print_report({"records": 60_000, "cores": 2.0, "throughput_tx_per_s": {}, "ratios": {},
                  "latency_ms": {"2 worker(s) @ 1,000/s": {"p50": 30.0, "p99": 150.0}},
                  "load_avg_1m": {"2 worker(s) @ 1,000/s": 2.5}})
    out = capsys.readouterr().out
    assert "throughput" not in out and "ratios" not in out
    assert "end-to-end latency" in out and "p99   150.0 ms" in out
    # And the other way round (`--rates ''`).
    print_report({"records": 60_000, "cores": 2.0, "ratios": {}, "latency_ms": {},
                  "throughput_tx_per_s": {"fraudstream 2 workers": 5000.0}})
    out = capsys.readouterr().out
    assert "throughput (60,000 transactions" in out
    assert "ratios" not in out and "latency" not in out


def test_the_workers_split_of_the_queued_time_comes_from_their_own_histograms() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from fraudstream.bench.harness import worker_splits
    from fraudstream.monitoring.metrics import WorkerMetrics

    pages = []
    for arrivals, waits in (([0.003] * 97 + [0.09] * 3, [0.015] * 100),
                            ([0.004] * 100, [0.012] * 97 + [0.3] * 3)):
        registry = CollectorRegistry()
        metrics = WorkerMetrics.create(registry)
        for value in arrivals:
            metrics.arrival_age.observe(value)
        for value in waits:
            metrics.batch_wait.observe(value)
        pages.append(generate_latest(registry).decode())
    splits = worker_splits(pages)
    # Within the buckets that hold them, over both workers: the p50s' ranks in 2-5 ms and
    # 10-20 ms, the p99s' (the 198th of 200) among the three slow records of each, in
    # 75-100 ms and 250-500 ms.
    assert 2.0 < splits["arrival"]["p50"] <= 5.0 and 10.0 < splits["batch wait"]["p50"] <= 20.0
    assert 75.0 < splits["arrival"]["p99"] <= 100.0
    assert 250.0 < splits["batch wait"]["p99"] <= 500.0
    assert worker_splits([]) == {}


def test_the_workers_split_is_printed_under_the_segments(
        capsys: pytest.CaptureFixture[str]) -> None:
    print_report({"records": 1, "throughput_tx_per_s": {}, "ratios": {}, "latency_ms": {
        "2 worker(s) @ 1,000/s": {
            "p50": 30.0, "p99": 150.0,
            "segments": {"queued": {"p50": 16.0, "p99": 80.0}},
            "in_workers": {"arrival": {"p50": 3.4, "p99": 48.2},
                           "batch wait": {"p50": 12.0, "p99": 61.0}}}}})
    out = capsys.readouterr().out
    assert "queued, in the workers: arrival p50 ~3 / p99 ~48 ms, batch wait p50 ~12 / p99 " \
        "~61 ms" in out
    assert "estimated within the workers' histogram buckets" in out


def test_no_split_when_a_worker_does_not_answer() -> None:
    from types import SimpleNamespace
    from typing import Any, cast

    from fraudstream.bench.harness import StartedPool

    def pool(*pages: str | None) -> StartedPool:
        workers = [SimpleNamespace(metrics_page=lambda p=p: p) for p in pages]
        return StartedPool(cast(Any, SimpleNamespace(workers=workers)))

    assert pool("a", "b").metrics_pages() == ["a", "b"]
    assert pool("a", None).metrics_pages() == []
