"""Pacing of ``produce_paced`` with a fake producer (no Kafka)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from fraudstream.streaming import Outgoing, ProduceStats, produce_paced


class AckingProducer:
    """Acknowledges every send at once, at increasing offsets."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(partition=0, offset=self.sent))
        self.sent += 1
        return fut


def records(n: int) -> list[Outgoing]:
    return [Outgoing(b"k", b"{}") for _ in range(n)]


def test_a_second_phase_is_paced_by_its_own_records_not_the_shared_counter() -> None:
    async def run() -> float:
        producer: Any = AckingProducer()
        stats = ProduceStats()
        common: dict[str, Any] = {"topic": "t", "labels_topic": "l", "label_delay_s": 0.0,
                                  "stats": stats}
        await produce_paced(producer, records(2_000), rate=0, **common)
        started = time.monotonic()
        await produce_paced(producer, records(100), rate=200, **common)
        assert stats.sent == 2_100
        return time.monotonic() - started

    # 100 records at 200/s take about half a second; pacing by the shared counter (2,100
    # sent) slept for about ten.
    assert 0.3 < asyncio.run(run()) < 2.0
