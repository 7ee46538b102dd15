"""A three-node Kafka of its own, for broker-loss scenarios when the local stack has one node."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fraudstream.deploy.local import LocalStack, StackConfig, StackError

#: The three nodes listen on the main Kafka port + this offset (+0, +100, +200:
#: ``deploy.local.kafka.node_ports``).
PORT_OFFSET = 700
#: Seconds each node gets to stop before SIGKILL: the cluster's teardown took 25 s with the
#: default 20 s and 7 s with this (measured in tests/chaos/test_kill_broker.py); nothing on
#: this throw-away cluster needs a clean shutdown.
STOP_GRACE_S = 2.0


@contextmanager
def three_node_kafka(root: Path, host: str, base_kafka_port: int,
                     timeout_s: float = 90.0) -> Iterator[LocalStack]:
    """Start three KRaft nodes (replication 3, min.insync.replicas 2) under ``root``; stop them."""
    from fraudstream import kafka_clients

    stack = LocalStack(StackConfig(root=root, host=host, kafka_port=base_kafka_port + PORT_OFFSET,
                                   kafka_nodes=3, kafka_heap_mb=256))
    try:
        stack.up(("kafka",))
        admin = kafka_clients.admin(stack.bootstrap)
        try:
            # Under load a new broker can be fenced for a moment after registering.
            deadline = time.monotonic() + timeout_s
            while len(admin.describe_cluster()["brokers"]) < 3:
                if time.monotonic() > deadline:
                    raise StackError("three Kafka brokers did not register in time")
                time.sleep(0.5)
        finally:
            admin.close()
        yield stack
    finally:
        stack.down(STOP_GRACE_S)
