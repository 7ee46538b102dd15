"""The API's own monitoring: process CPU and memory, and Kafka failures of its background work."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from fraudstream.api.app import create_app
from fraudstream.settings import Settings
from tests.conftest import wait_until


class BrokenProducer:
    """A producer whose Kafka never answers."""

    async def start(self) -> None:
        raise ConnectionError("no broker")

    async def stop(self) -> None:
        return None

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("never started")


def test_metrics_show_process_resources_and_count_kafka_failures() -> None:
    app = create_app(Settings(), producer=BrokenProducer(), start_background=True)
    with TestClient(app) as client:
        text = client.get("/metrics").text
        assert "process_cpu_seconds_total" in text and "process_resident_memory_bytes" in text

        def counted() -> bool:
            for line in client.get("/metrics").text.splitlines():
                if line.startswith('fraudstream_api_kafka_errors_total{operation="background"}'):
                    return float(line.split()[-1]) >= 1
            return False

        wait_until(counted, 10, "the failed producer start was not counted")
