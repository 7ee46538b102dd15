"""The processor hands the drift monitor each scored row's transaction time (event time)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fraudstream.simulator import parse_timestamp
from tests.unit.workers.test_processor import Harness, tx


class RecordingDrift:
    """Stands in for ``DriftMonitor``: keeps what ``observe`` was given."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def observe(self, version: str, reference: Any, rows: np.ndarray, scores: np.ndarray,
                event_times: np.ndarray | None = None) -> None:
        self.calls.append({"rows": len(rows), "event_times": event_times})


def test_event_times_are_the_scored_transactions_timestamps_in_row_order() -> None:
    h = Harness()
    drift = RecordingDrift()
    h.processor.drift = drift  # type: ignore[assignment]
    first, second = tx(1), {**tx(2, card="C2"), "timestamp": "2026-11-02T00:00:00Z"}
    h.run([h.record(first), h.record(second)])
    (call,) = drift.calls
    assert call["rows"] == 2
    assert call["event_times"].tolist() == [parse_timestamp("2026-11-01T10:00:00Z"),
                                            parse_timestamp("2026-11-02T00:00:00Z")]
