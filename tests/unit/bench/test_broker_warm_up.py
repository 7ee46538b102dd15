"""The benchmark warms a cold broker up before measuring anyone, and leaves a warm one alone."""

from __future__ import annotations

from typing import Any

import pytest

from fraudstream.bench import harness
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate


@pytest.fixture(scope="module")
def data() -> Any:
    return simulate(SimulationConfig(n_customers=50, n_terminals=100, nb_days=3, seed=7))


def warm_up(monkeypatch: pytest.MonkeyPatch, data: Any, used: float | None,
            started_now: bool = False
            ) -> tuple[float | None, list[tuple[str, int, float]], list[str]]:
    runs: list[tuple[str, int, float]] = []
    said: list[str] = []

    def latency_run(base: Settings, contender: Any, label: str, records: list[Any],
                    rate: float, say: Any) -> None:
        runs.append((contender.name, len(records), rate))

    monkeypatch.setattr(harness, "latency_run", latency_run)
    found = harness.warm_up_broker(Settings(), data, 2.0, lambda: used, said.append,
                                   started_now=started_now)
    return found, runs, said


def test_a_cold_broker_gets_an_unreported_run_of_two_workers_first(
        monkeypatch: pytest.MonkeyPatch, data: Any) -> None:
    found, runs, said = warm_up(monkeypatch, data, 15.0)
    assert found == 15.0
    assert runs == [("fraudstream 2 workers", int(2 * harness.BROKER_WARM_UP_RUN_S), 2.0)]
    assert "15 CPU-seconds" in said[0] and "not reported" in said[0]


@pytest.mark.parametrize("used", [harness.WARM_BROKER_CPU_S, 500.0, None])
def test_a_warm_broker_or_one_not_ours_is_measured_as_it_is(
        monkeypatch: pytest.MonkeyPatch, data: Any, used: float | None) -> None:
    assert warm_up(monkeypatch, data, used) == (None, [], [])


def test_a_broker_the_benchmark_started_is_warmed_up_whatever_it_used_starting(
        monkeypatch: pytest.MonkeyPatch, data: Any) -> None:
    # Idle, a broker burns CPU too (about 0.16 CPU-second a second here): a threshold alone
    # would call a broker warm that only waited.
    found, runs, _said = warm_up(monkeypatch, data, 500.0, started_now=True)
    assert found == 500.0 and len(runs) == 1
