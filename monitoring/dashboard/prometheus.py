"""A small client of Prometheus's HTTP API: instant queries, range queries, alerts."""

from __future__ import annotations

import asyncio
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from fraudstream.redaction import redact_url

DEFAULT_TIMEOUT_S = 3.0


class PrometheusError(Exception):
    """Root of this module's errors; ``retriable`` says whether asking again may help."""

    retriable = False


class PrometheusUnavailable(PrometheusError):
    """Prometheus did not answer, or answered that it cannot serve queries now."""

    retriable = True


class PrometheusQueryError(PrometheusError):
    """Prometheus refused one query (bad PromQL, bad parameters): asking again will not help."""


@dataclass(frozen=True)
class Sample:
    """One series of an instant query: its labels and value (None when not finite)."""

    labels: dict[str, str]
    value: float | None


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and ``(unix time, value or None)`` points."""

    labels: dict[str, str]
    points: list[tuple[float, float | None]]


def finite(text: str) -> float | None:
    """Prometheus's value string as a float; NaN and infinities (no data) become None."""
    value = float(text)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class PrometheusClient:
    """Reads one Prometheus at ``base_url`` (``http://host:port``); no I/O until asked."""

    base_url: str
    timeout_s: float = DEFAULT_TIMEOUT_S

    async def query(self, expr: str) -> list[Sample]:
        """The instant vector (or scalar) ``expr`` evaluates to now."""
        data = await self._get("/api/v1/query", {"query": expr})
        if data["resultType"] == "scalar":
            return [Sample({}, finite(data["result"][1]))]
        return [Sample(dict(r["metric"]), finite(r["value"][1])) for r in data["result"]]

    async def query_range(self, expr: str, start: float, end: float,
                          step: float) -> list[Series]:
        """The series ``expr`` gives from ``start`` to ``end`` (unix seconds) every ``step``."""
        data = await self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}",
                                                       "end": f"{end:.3f}", "step": f"{step:g}"})
        return [Series(dict(r["metric"]), [(float(t), finite(v)) for t, v in r["values"]])
                for r in data["result"]]

    async def alerts(self) -> list[dict[str, Any]]:
        """Alerts Prometheus's rules hold now (pending and firing), as it reports them."""
        data = await self._get("/api/v1/alerts", {})
        return list(data["alerts"])

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        url = self.base_url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        return await asyncio.to_thread(self._fetch, url)

    def _fetch(self, url: str) -> Any:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = _error_of(exc)
            if exc.code in (400, 422):
                raise PrometheusQueryError(f"Prometheus refused the query: {detail}") from exc
            raise PrometheusUnavailable(f"Prometheus at {redact_url(self.base_url)} answered HTTP "
                                        f"{exc.code}: {detail}") from exc
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusUnavailable(f"Prometheus at {redact_url(self.base_url)} did not answer "
                                        f"({type(exc).__name__}: {reason})") from exc
        if body.get("status") != "success":
            raise PrometheusQueryError(f"Prometheus refused the query: {body.get('error')}")
        return body["data"]


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (OSError, ValueError, AttributeError):
        return str(exc.reason)
