"""A supervisor that died leaves its workers running; the next one stops them and takes over."""

from __future__ import annotations

import pytest

from fraudstream.settings import Settings
from workers.orphans import SupervisorBusy, is_worker
from workers.supervisor import Supervisor
from workers.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_the_next_supervisor_stops_the_orphans_and_binds_their_ports(settings: Settings) -> None:
    ensure_topics(settings)
    dead = Supervisor(settings, workers=1, standbys=0)
    dead.start()
    nxt = Supervisor(settings, workers=1, standbys=0)
    try:
        dead.wait_ready(timeout=120)
        orphan = dead.slots[0].worker
        assert orphan.proc is not None and is_worker(orphan.proc.pid)
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
