"""A latency run ends once every label is sent too: the last ones are due a second after the
last transactions, often after the last score (seen 2026-12-04: the raw loops scored the
last records within milliseconds, the producer was stopped under the labels still due, and
asyncio printed the sender's ProducerClosed)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from aiokafka.errors import ProducerClosed

from fraudstream.bench import harness
from fraudstream.settings import Settings
from fraudstream.streaming import Outgoing


class FakeProducer:
    """Acknowledges at once; a send after ``stop`` fails as aiokafka's does."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None
                   ) -> asyncio.Future[Any]:
        if self.stopped:
            raise ProducerClosed()
        self.sent.append((topic, value))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class EchoingReader:
    """A score for every transaction sent so far, the moment it is polled."""

    def __init__(self, producer: FakeProducer, transactions: str) -> None:
        self.producer, self.transactions, self.answered = producer, transactions, 0

    async def __aenter__(self) -> EchoingReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def poll(self, timeout_s: float = 0.2) -> list[tuple[str, None, bytes, int]]:
        await asyncio.sleep(0.01)
        sent = [v for t, v in self.producer.sent if t == self.transactions]
        now_ms = int(time.time() * 1000)
        score = orjson.dumps({"scored_at": "2026-12-04T00:00:00Z", "ingested_at_ms": now_ms})
        out = [("scores", None, score, now_ms) for _ in sent[self.answered:]]
        self.answered = len(sent)
        return out


def test_every_label_is_sent_before_the_producer_stops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    producer = FakeProducer()
    monkeypatch.setattr(harness, "new_producer", lambda *a, **k: producer)
    monkeypatch.setattr(harness, "TopicReader", lambda *a, **k: EchoingReader(
        producer, settings.topic_transactions))
    records = [Outgoing(key=b"card-%d" % i, value=b"{}", label=b"label-%d" % i)
               for i in range(40)]

    latencies = asyncio.run(harness._paced_latency(settings, records, rate=200))

    assert len(latencies.total) == 40
    labels = [v for t, v in producer.sent if t == settings.topic_labels]
    assert labels == [r.label for r in records]
