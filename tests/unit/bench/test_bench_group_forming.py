"""A worker pool's drain timed across its group's forming is run again, then reported marked."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fraudstream.bench import harness
from fraudstream.bench.harness import GroupWatch, Measurement, moved_partitions
from fraudstream.commands.bench_cmd import print_report
from fraudstream.settings import Settings


def test_a_worker_that_took_every_partition_and_gave_some_up_is_a_rebalance() -> None:
    # As measured: the first worker to join took all four, then kept two of them.
    assert moved_partitions([[(0, 1, 2, 3), None], [(0, 1, 2, 3), ()],
                             [(2, 3), (0, 1)], [(2, 3), (0, 1)]])
    # Revoked (empty) in between counts too: it came back with other partitions.
    assert moved_partitions([[(0, 1), (2, 3)], [(), ()], [(0, 2), (1, 3)]])


def test_a_group_formed_at_once_or_a_worker_not_answering_is_no_rebalance() -> None:
    assert not moved_partitions([[None, None], [(1, 3), None], [(1, 3), (0, 2)],
                                 [(1, 3), (0, 2)], [None, (0, 2)]])
    assert not moved_partitions([[(1, 3), ()], [(1, 3), (0, 2)]])  # a late first assignment
    assert not moved_partitions([])


class Polled:
    """A started contender whose assignments follow ``script``, then stay at its last."""

    def __init__(self, script: list[list[tuple[int, ...] | None]]) -> None:
        self.script = script
        self.polls = 0

    def assignments(self) -> list[tuple[int, ...] | None]:
        self.polls += 1
        return self.script[min(self.polls, len(self.script)) - 1]


def test_the_watch_sees_a_move_between_its_looks_and_stops_on_exit() -> None:
    polled = Polled([[(0, 1, 2, 3), None], [(2, 3), (0, 1)]])
    with GroupWatch(polled, interval=0.01) as watch:  # type: ignore[arg-type]
        time.sleep(0.1)
    polls = polled.polls
    time.sleep(0.05)
    assert watch.moved and polls >= 2 and polled.polls == polls


def test_a_contender_outside_any_group_is_not_polled_again() -> None:
    polled = Polled([[]])
    with GroupWatch(polled, interval=0.01) as watch:  # type: ignore[arg-type]
        time.sleep(0.05)
    assert polled.polls == 1 and not watch.moved


def _drains(monkeypatch: pytest.MonkeyPatch, moved: list[bool]) -> tuple[Measurement, list[str]]:
    said: list[str] = []
    outcomes = iter(moved)

    def drain(base: Settings, contender: Any, records: list[Any], timeout: float,
              say: Any) -> Measurement:
        return Measurement(contender.name, 10, 1.0, 10.0, rebalanced=next(outcomes))

    monkeypatch.setattr(harness, "drain", drain)
    contender = harness.Contender("fraudstream 2 workers", lambda settings: None)  # type: ignore
    return harness.throughput_run(Settings(), contender, [], 1.0, said.append), said


def test_a_drain_across_a_rebalance_is_run_again(monkeypatch: pytest.MonkeyPatch) -> None:
    measured, said = _drains(monkeypatch, [True, False, True])
    assert not measured.rebalanced
    assert len(said) == 1 and "draining again" in said[0]


def test_after_every_attempt_rebalanced_the_last_is_reported_marked(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    measured, said = _drains(monkeypatch, [True] * harness.DRAIN_ATTEMPTS)
    assert measured.rebalanced and len(said) == harness.DRAIN_ATTEMPTS
    assert "reported, marked" in said[-1]
    print_report({"records": 10, "cores": 2.0, "ratios": {}, "latency_ms": {},
                  "throughput_tx_per_s": {"fraudstream 2 workers": 10.0},
                  "drain_seconds": {"fraudstream 2 workers": 1.0},
                  "scores_drain_seconds": {"fraudstream 2 workers": 1.0},
                  "drains_with_a_rebalance": ["fraudstream 2 workers"]})
    assert "drained in 1.0 s (scores in 1.0 s), its group rebalanced meanwhile" in \
        capsys.readouterr().out


def test_a_group_is_settled_once_it_holds_every_partition_once_and_stays() -> None:
    formed: list[tuple[int, ...] | None] = [(0, 2), (1, 3)]
    assert harness.settled([formed] * 3, partitions=4, quiet_polls=3)
    assert not harness.settled([formed] * 2, partitions=4, quiet_polls=3), "not long enough"
    # As measured: the first to join holds all four while the other has none yet.
    assert not harness.settled([[(0, 1, 2, 3), ()]] * 3, partitions=4, quiet_polls=3)
    assert not harness.settled([[(0, 1, 2, 3), None]] * 3, partitions=4, quiet_polls=3)
    # Mid-rebalance: one still answers with all four, the other already with its two.
    assert not harness.settled([[(0, 1, 2, 3), (1, 3)]] * 3, partitions=4, quiet_polls=3)
    assert not harness.settled([[(0, 1, 2, 3), ()], formed, formed], partitions=4,
                               quiet_polls=3), "it just moved"
    assert harness.settled([[(0, 1, 2, 3)]], partitions=4, quiet_polls=1)  # one worker
    assert harness.settled([[]], partitions=4, quiet_polls=1)  # outside any group


def test_the_wait_ends_once_the_group_settled_and_says_so_when_it_never_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "GROUP_POLL_S", 0.001)
    monkeypatch.setattr(harness, "SETTLED_S", 0.01)
    formed: list[tuple[int, ...] | None] = [(0, 1), (2, 3)]
    polled = Polled([[(0, 1, 2, 3), ()], [(0, 1, 2, 3), (0, 1)], formed])
    said: list[str] = []
    harness.settled_group(polled, 4, 5.0, said.append, "pool")  # type: ignore[arg-type]
    assert said == [] and polled.polls == 2 + 10
    never = Polled([[(0, 1, 2, 3), ()]])
    harness.settled_group(never, 4, 0.05, said.append, "pool")  # type: ignore[arg-type]
    assert len(said) == 1 and "did not settle" in said[0]
