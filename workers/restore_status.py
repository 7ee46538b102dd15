"""How far a worker is in restoring its tables from their changelogs (for /ready).

This is the one place that reads Faust's table recovery service. ``app.tables.recovery`` and
its ``in_recovery``, ``active_remaining_total()``, ``active_offsets`` and
``active_highwaters`` are public names of faust-streaming's ``faust.tables.recovery.Recovery``
but not a documented API: if an upgrade renames them, ``RestoreWatch.status`` reports "not
restoring" (and logs once) rather than failing the readiness probe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreStatus:
    """One reading: restoring or not, changelog records left and applied in this restore."""

    restoring: bool
    remaining: int = 0
    done: int = 0

    def to_json(self) -> dict[str, Any]:
        """The ``restoring`` and ``restore`` fields of the /ready body."""
        return {"restoring": self.restoring,
                "restore": {"remaining": self.remaining, "done": self.done}
                if self.restoring else None}


class RestoreWatch:
    """Reads the restore progress of one Faust app; remembers where this restore started.

    ``done`` counts the records applied since the restore was first seen, so it grows while
    the restore moves even when Faust's own offsets are absolute changelog positions.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._start_remaining: int | None = None
        self._warned = False

    def status(self) -> RestoreStatus:
        """The restore progress now (a worker between restores is not restoring)."""
        try:
            recovery = self.app.tables.recovery
            restoring = bool(recovery.in_recovery)
            remaining = max(int(recovery.active_remaining_total()), 0) if restoring else 0
        except (AttributeError, TypeError) as exc:
            if not self._warned:
                self._warned = True
                logger.warning("restore progress unreadable (faust changed?) error=%r", exc)
            return RestoreStatus(False)
        if not restoring:
            self._start_remaining = None
            return RestoreStatus(False)
        if self._start_remaining is None or remaining > self._start_remaining:
            self._start_remaining = remaining
        return RestoreStatus(True, remaining, self._start_remaining - remaining)
