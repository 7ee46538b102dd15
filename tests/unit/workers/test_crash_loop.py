"""The supervisor backs off replacing workers that die right after starting."""

from __future__ import annotations

from fraudstream.workers.supervisor import CrashLoopGuard


def test_quick_deaths_back_off_exponentially_and_a_long_life_resets() -> None:
    guard = CrashLoopGuard(quick_s=15, free=2, max_delay_s=60)
    guard.died(1.0, now=100.0)
    guard.died(1.0, now=101.0)
    assert guard.may_start(101.0)  # the first two are free
    guard.died(1.0, now=102.0)
    assert not guard.may_start(103.0) and guard.may_start(104.0)  # 2 s
    guard.died(1.0, now=104.0)
    assert not guard.may_start(107.0) and guard.may_start(108.0)  # 4 s
    for _ in range(10):
        guard.died(1.0, now=200.0)
    assert not guard.may_start(259.0) and guard.may_start(260.0)  # capped at 60 s
    guard.died(600.0, now=300.0)  # it ran ten minutes: not a crash loop
    assert guard.may_start(300.0) and guard.quick_deaths == 0
