"""What the page shows, read from Prometheus: every panel's latest values, and chart series."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Protocol, cast

from fraudstream.monitoring.dashboard.panels import PANELS, Panel, Query
from fraudstream.monitoring.dashboard.prometheus import PrometheusQueryError, Sample, Series

#: Points per chart: 5 minutes at Prometheus's 2 s scrape interval.
CHART_POINTS = 150
MAX_MINUTES = 60
_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class Reader(Protocol):
    """What the snapshot needs of a Prometheus client (a ``PrometheusClient``, or a fake)."""

    async def query(self, expr: str) -> list[Sample]: ...

    async def query_range(self, expr: str, start: float, end: float,
                          step: float) -> list[Series]: ...

    async def alerts(self) -> list[dict[str, Any]]: ...


def series_name(legend: str, labels: dict[str, str]) -> str:
    """The legend with each ``{{label}}`` replaced by the series' value of it (Grafana's rule)."""
    return _LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), legend)


def describe(p: Panel) -> dict[str, Any]:
    """A panel's definition as the page needs it."""
    return {"id": p.id, "title": p.title, "kind": p.kind, "unit": p.unit, "width": p.width,
            "description": p.description, "empty": p.empty,
            "queries": [{"expr": q.expr, "legend": q.legend} for q in p.queries]}


async def _instant(reader: Reader, q: Query) -> dict[str, Any]:
    try:
        samples = await reader.query(q.expr)
    except PrometheusQueryError as exc:
        return {"legend": q.legend, "series": [], "error": str(exc)}
    return {"legend": q.legend, "error": None,
            "series": [{"name": series_name(q.legend, s.labels), "labels": s.labels,
                        "value": s.value} for s in samples]}


def _alert(raw: dict[str, Any]) -> dict[str, Any]:
    labels = dict(raw.get("labels", {}))
    annotations = dict(raw.get("annotations", {}))
    return {"name": labels.get("alertname", ""), "state": raw.get("state", ""),
            "severity": labels.get("severity", ""), "active_at": raw.get("activeAt", ""),
            "summary": annotations.get("summary", annotations.get("description", "")),
            "labels": labels}


async def summary(reader: Reader, now: float | None = None) -> dict[str, Any]:
    """The latest value of every query of every panel, and the alerts held now.

    Raises ``PrometheusUnavailable`` when Prometheus does not answer; a query it refuses
    carries its ``error`` instead of failing the whole summary.
    """
    queries = [(p, q) for p in PANELS if p.kind != "alerts" for q in p.queries]
    answers = await asyncio.gather(*(_instant(reader, q) for _p, q in queries),
                                   reader.alerts(), return_exceptions=True)
    # One unanswered query means Prometheus is down (PrometheusUnavailable): say so, once.
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    panels: dict[str, dict[str, Any]] = {p.id: {"queries": []} for p in PANELS}
    for (p, _q), answer in zip(queries, answers[:-1], strict=True):
        panels[p.id]["queries"].append(answer)
    held = cast(list[dict[str, Any]], answers[-1])
    alerts = [_alert(a) for a in held]
    alerts.sort(key=lambda a: (a["state"] != "firing", a["name"]))
    return {"time": time.time() if now is None else now, "panels": panels, "alerts": alerts}


async def series(reader: Reader, p: Panel, minutes: float,
                 now: float | None = None) -> dict[str, Any]:
    """Every query of a chart panel over the last ``minutes``, about ``CHART_POINTS`` points."""
    minutes = min(max(minutes, 1.0), MAX_MINUTES)
    end = time.time() if now is None else now
    start = end - minutes * 60
    step = max(1.0, round(minutes * 60 / CHART_POINTS))

    async def one(q: Query) -> dict[str, Any]:
        try:
            found = await reader.query_range(q.expr, start, end, step)
        except PrometheusQueryError as exc:
            return {"legend": q.legend, "series": [], "error": str(exc)}
        return {"legend": q.legend, "error": None,
                "series": [{"name": series_name(q.legend, s.labels), "labels": s.labels,
                            "points": s.points} for s in found]}

    queries = await asyncio.gather(*(one(q) for q in p.queries))
    return {"panel": p.id, "start": start, "end": end, "step": step, "queries": queries}
