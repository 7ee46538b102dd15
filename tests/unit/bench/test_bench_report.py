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
        "latency_ms": {"2 worker(s) @ 1,000/s": {"p50": 40.0, "p99": 319.0, "max": 400.0}},
        "load_avg_1m": {"raw aiokafka loop": 1.5, "fraudstream 2 workers": 2.25,
                        "2 worker(s) @ 1,000/s": 3.0},
    }
    print_report(report)
    out = capsys.readouterr().out
    assert "(raw loop 4,103 tx/s in this run)" in out
    assert f"{'fraudstream 2 workers':<36} {2998:>10,} tx/s   load 2.25" in out
    assert "p99   319.0 ms   load 3.00" in out
    assert "2 cores" in out


def test_machine_load_names_the_load_average_and_the_cores() -> None:
    load = machine_load()
    assert load["load_avg_1m"] >= 0 and load["cores"] >= 1
