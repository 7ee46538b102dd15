"""Three KRaft nodes on request: replication 3, min.insync.replicas 2, one node lost, no loss."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from deploy.local import LocalStack, StackConfig
from fraudstream.streaming import TopicReader
from tests.conftest import wait_until
from tests.stack_fixtures import BASE_PORT

pytestmark = pytest.mark.integration


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    out: list[bytes] = []
    async with TopicReader(bootstrap, [topic]) as reader:
        for _ in range(100):
            out += [v or b"" for _t, _k, v, _ts in await reader.poll(0.3)]
            if len(out) >= expected:
                break
    return out


def create_replicated(bootstrap: str) -> bool:
    """One attempt, with a fresh client (a client from before every broker joined can stick)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        admin.create_topics({"replicated": {"num_partitions": 2, "replication_factor": 3,
                                            "configs": {"min.insync.replicas": "2"}}},
                            wait_for_metadata=True)
    except TopicAlreadyExistsError:
        return True
    except KafkaError as exc:
        print(f"create_topics: {exc!r}")
        return False
    finally:
        admin.close()
    return True


def test_three_node_cluster_survives_one_node(tmp_path: Path) -> None:
    stack = LocalStack(StackConfig(root=tmp_path, kafka_port=BASE_PORT + 600, kafka_nodes=3,
                                   kafka_heap_mb=256))
    try:
        stack.up(("kafka",))
        admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
        try:
            # Under load a new broker can be fenced for a moment after registering.
            wait_until(lambda: len(admin.describe_cluster()["brokers"]) == 3, 60,
                       "three brokers did not register")
            wait_until(lambda: create_replicated(stack.bootstrap), 120,
                       "the RF-3 topic was not created", interval=1.0)
        finally:
            admin.close()
        asyncio.run(produce(stack.bootstrap, "replicated", [b"before-%d" % i for i in range(20)]))
        assert stack.kafka_node(3).kill(signal.SIGKILL)
        asyncio.run(produce(stack.bootstrap, "replicated", [b"after-%d" % i for i in range(20)]))
        values = asyncio.run(read_all(stack.bootstrap, "replicated", 40))
        assert sorted(values) == sorted([b"before-%d" % i for i in range(20)] +
                                        [b"after-%d" % i for i in range(20)])
    finally:
        stack.down()

