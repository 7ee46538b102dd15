"""A supervisor that died leaves its workers running; the next one stops them and takes over."""

from __future__ import annotations

import pytest

from fraudstream.settings import Settings
from fraudstream.workers.orphans import SupervisorBusy, is_worker
from fraudstream.workers.supervisor import Supervisor
from fraudstream.workers.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_the_next_supervisor_stops_the_orphans_and_binds_their_ports(settings: Settings) -> None:
    ensure_topics(settings)
    dead = Supervisor(settings, workers=1, standbys=0)
    dead.start()
    nxt = Supervisor(settings, workers=1, standbys=0)
    try:
        dead.wait_ready(timeout=120)
        orphan = dead.slots[0].worker
        assert orphan.proc is not None and is_worker(orphan.proc.pid, settings.app_id)
        with pytest.raises(SupervisorBusy):
            Supervisor(settings, workers=1, standbys=0).start()

        # The supervisor dies (SIGKILL: nothing of it runs any more), its worker does not.
        assert dead._claim is not None
        dead._claim.close()
        dead._claim = None

        nxt.start()
        assert orphan.proc.wait(10) == -9
        # Its worker binds the same web port the orphan held, and gets every partition.
        nxt.wait_ready(timeout=120)
        assert nxt.slots[0].worker.port == orphan.port
    finally:
        nxt.stop()
        dead.stop()


def test_a_worker_refuses_outputs_with_fewer_partitions_than_its_input(
        settings: Settings) -> None:
    from fraudstream import kafka_clients
    from fraudstream.workers.health import EXIT_CONFIG_ERROR
    from fraudstream.workers.pool import WorkerProcess

    admin = kafka_clients.admin(settings)
    try:
        admin.create_topics({settings.topic_scores: {"num_partitions": 2,
                                                     "replication_factor": 1}},
                            wait_for_metadata=True)
    finally:
        admin.close()
    ensure_topics(settings)  # the others, with 4 partitions
    worker = WorkerProcess(settings, 0, name="partition-check")
    worker.start()
    assert worker.proc is not None
    assert worker.proc.wait(60) == EXIT_CONFIG_ERROR
    line = worker.error_line()
    assert f"{settings.topic_scores} has 2 partitions, fewer than" in line, line
