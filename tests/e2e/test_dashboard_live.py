"""The live dashboard in headless chromium, against a real worker, Kafka and Prometheus.

Load flows while the page is open; the numbers the page shows are checked against the test's
own Prometheus queries and, once the load has drained, the scored count against the decisions
committed in the scores topic (a source the page does not read); a screenshot under load goes
to ``build/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from fraudstream.feeds import outgoing, with_bad_records
from fraudstream.monitoring.dashboard.panels import PANELS, Panel
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.streaming import TopicReader, new_producer, produce_paced
from fraudstream.workers.pool import WorkerPool
from fraudstream.workers.topics import ensure_topics
from tests.conftest import wait_until
from tests.e2e.conftest import ApiServer, prometheus_alerts, prometheus_vector
from tests.stack_fixtures import BASE_PORT

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "build" / "dashboard.png"
RATE = 100  # tx/s: the load (about 4,800 records) lasts about 48 s while the page is watched
BAD_EVERY = 100  # one malformed record per 100, so dead letters show too


class Load:
    """Paced transactions (with a few malformed ones) produced from a background thread."""

    def __init__(self, settings: Settings, seed: int) -> None:
        ds = simulate(SimulationConfig(n_customers=120, n_terminals=300, nb_days=25, seed=seed,
                                       id_prefix=f"e2e{uuid.uuid4().hex[:6]}"))
        self.records = list(with_bad_records(outgoing(ds, with_labels=False), BAD_EVERY))
        self.settings = settings
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="e2e-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._thread.join(60)

    def _run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    async def _produce(self) -> None:
        producer = new_producer(self.settings.kafka_bootstrap)
        await producer.start()
        try:
            await produce_paced(producer, self.records, topic=self.settings.topic_transactions,
                                labels_topic=self.settings.topic_labels, rate=RATE,
                                label_delay_s=0, should_stop=lambda: self._stop)
        finally:
            await producer.stop()


@dataclasses.dataclass
class Live:
    settings: Settings
    pool: WorkerPool
    api: ApiServer
    load: Load
    page: Any

    def prometheus(self, promql: str) -> list[tuple[dict[str, str], float]]:
        return prometheus_vector(self.settings.prometheus_base_url, promql)

    def prometheus_value(self, promql: str) -> float | None:
        found = self.prometheus(promql)
        return found[0][1] if found else None

    def stat(self, panel: str, legend: str) -> float | None:
        """The raw value behind a stat on the page (None for "no data" or not drawn yet)."""
        loc = self.page.locator(f'.stat-value[data-panel="{panel}"][data-legend="{legend}"]')
        if loc.count() == 0:
            return None
        raw = loc.first.get_attribute("data-value")
        return float(raw) if raw else None

    def stat_text(self, panel: str, legend: str) -> str:
        loc = self.page.locator(f'.stat-value[data-panel="{panel}"][data-legend="{legend}"]')
        return str(loc.first.inner_text())

    def updates(self) -> int:
        return int(self.page.locator("body").get_attribute("data-updates") or 0)


@pytest.fixture(scope="module")
def live(base_settings: Settings, browser: Any) -> Iterator[Live]:
    """A worker, the API serving the dashboard, load flowing, and the page open in chromium."""
    tag = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(
        base_settings, app_id=f"fs-e2e-{tag}", topic_transactions=f"tx-{tag}",
        topic_scores=f"scores-{tag}", topic_dlq=f"dlq-{tag}", topic_labels=f"labels-{tag}",
        topic_model_updates=f"model-updates-{tag}", api_port=BASE_PORT + 300,
        prometheus_url=f"http://127.0.0.1:{base_settings.prometheus_port}")
    ensure_topics(settings)
    pool = WorkerPool(settings, 1)
    api = ApiServer(settings, settings.state_dir / "logs" / f"api-e2e-{tag}.log")
    load = Load(settings, seed=11)
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        pool.start()
        pool.wait_ready(timeout=120)
        api.start()
        load.start()
        page = context.new_page()
        page.goto(f"{api.url}/dashboard")
        yield Live(settings, pool, api, load, page)
    finally:
        context.close()
        load.stop()
        api.stop()
        pool.stop()
        print(f"--- API log tail\n{api.log_tail()}")
        for w in pool.workers:
            print(f"--- worker {w.index} log tail\n{w.log_tail(20)}")


def test_page_updates_live_under_load(live: Live) -> None:
    page = live.page
    wait_until(lambda: (live.stat("scored_total", "scored") or 0) > 0, 90,
               "the page never showed a scored transaction")
    assert not live.load.done.is_set(), "load ended before the page was checked under load"
    page.evaluate("window.__sameDocument = true")
    before, updates = live.stat("scored_total", "scored"), live.updates()
    wait_until(lambda: (live.stat("scored_total", "scored") or 0) > (before or 0), 60,
               f"the scored count stayed at {before} while load ran")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded to update"
    assert live.updates() > updates
    assert page.locator("body").get_attribute("data-state") == "live"
    # The throughput chart draws a line that grows as points arrive.
    scored_line = page.locator('#panel-throughput path[data-series="scored/s"]')
    wait_until(lambda: scored_line.count() == 1
               and (scored_line.get_attribute("d") or "").count("L") >= 5, 60,
               "the throughput chart never drew a line")
    # The screenshot shows the load well under way (not yet over: checked below).
    halfway = len(live.load.records) // 2
    wait_until(lambda: (live.stat("scored_total", "scored") or 0) >= halfway, 90,
               f"the page never showed {halfway} transactions scored")
    wait_until(lambda: (live.stat("fraud_rate", "declined") is not None), 30,
               "the fraud rate never showed")
    assert not live.load.done.is_set(), "load ended before the screenshot"
    # The supervisor's panels say why they are empty exactly when Prometheus holds nothing for
    # them: no supervisor runs here, but the suite's earlier tests share this Prometheus and
    # may have left a supervisor's failovers within the last hour (CI, 2026-12-02).
    for panel in (p for p in PANELS if p.id in ("supervisor", "failovers")):
        wait_until(functools.partial(_says_why_exactly_when_empty, live, panel), 30,
                   f"the {panel.id} panel's explanation does not match Prometheus's answer")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    print(f"screenshot under load: {SCREENSHOT}")


async def committed_outputs(settings: Settings) -> tuple[int, int]:
    """Transactions with a committed score, and committed dead letters, in the topics (read
    to their end)."""
    decided: set[str] = set()
    dead = [0]

    def observe(topic: str, _key: bytes | None, value: bytes | None, _ts: int) -> None:
        if topic == settings.topic_scores:
            decided.add(str(orjson.loads(value or b"{}")["transaction_id"]))
        else:
            dead[0] += 1

    async with TopicReader(settings, [settings.topic_scores, settings.topic_dlq]) as reader:
        assert await reader.read_until_settled(observe, settle_s=2.0), "the outputs never settled"
    return len(decided), dead[0]


def _says_why_exactly_when_empty(live: Live, panel: Panel) -> bool:
    why = live.page.locator(f"#panel-{panel.id} .empty-why")
    empty = not any(live.prometheus(q.expr) for q in panel.queries)
    if why.count() != int(empty):
        return False
    return not empty or why.inner_text() == panel.empty


def test_page_numbers_match_prometheus(live: Live) -> None:
    page = live.page
    wait_until(lambda: page.locator("body").get_attribute("data-state") == "live", 60,
               "the page never went live")
    # Workers: the page's "up" and "targets" equal Prometheus's view of the scrape targets.
    worker_targets = 'count(up{component="worker"})'
    wait_until(lambda: live.stat("workers", "targets") == live.prometheus_value(worker_targets)
               == len(live.pool.workers), 60,
               f"worker targets on the page {live.stat('workers', 'targets')} != Prometheus "
               f"{live.prometheus_value(worker_targets)} != {len(live.pool.workers)} started")
    wait_until(lambda: live.stat("workers", "up") == live.prometheus_value(
        'sum(up{component="worker"})') == 1, 30, "workers up differs from Prometheus")
    rows = page.locator("#panel-worker_table tbody tr")
    assert rows.count() == 1
    instance = rows.first.locator('td[data-label="instance"]').inner_text()
    assert instance == f"127.0.0.1:{live.pool.workers[0].port}"
    # The model in production: the version and family Prometheus reports, on the page.
    models = live.prometheus("count by (version, family) (fraudstream_model_info)")
    assert len(models) == 1, models
    model_row = page.locator("#panel-model tbody tr")
    wait_until(lambda: model_row.count() == 1, 30, "the model table stayed empty")
    shown = {n: model_row.first.locator(f'td[data-label="{n}"]').inner_text()
             for n in ("version", "family")}
    assert shown == {"version": models[0][0]["version"], "family": models[0][0]["family"]}
    # While load runs the page never shows more than Prometheus has counted.
    scored = "sum(fraudstream_transactions_scored_total)"
    wait_until(lambda: (live.stat("scored_total", "scored") or 0) > 0, 60, "nothing scored")
    on_page = live.stat("scored_total", "scored") or 0
    assert on_page <= (live.prometheus_value(scored) or 0)
    # Once the load has drained: Prometheus counts every record, and the page shows exactly
    # its count (as a person reads it, thousands separated).
    assert live.load.done.wait(180), "the load did not finish"
    assert live.load.error is None, live.load.error
    total = len(live.load.records)
    dead = "sum(fraudstream_transactions_dead_lettered_total)"
    wait_until(lambda: (live.prometheus_value(scored) or 0)
               + (live.prometheus_value(dead) or 0) == total, 90,
               f"Prometheus never counted all {total} records: scored "
               f"{live.prometheus_value(scored)} + dead-lettered {live.prometheus_value(dead)}")
    final = live.prometheus_value(scored)
    assert final is not None and 0 < final < total
    wait_until(lambda: live.stat("scored_total", "scored") == final, 30,
               f"the page shows {live.stat('scored_total', 'scored')} scored, Prometheus {final}")
    assert live.stat_text("scored_total", "scored") == f"{int(final):,}"
    # And against a source the page does not read: the decisions committed in Kafka.
    # (In a thread of its own: Playwright's sync API runs an event loop in this one.)
    with ThreadPoolExecutor(1) as thread:
        decided, dead_letters = thread.submit(asyncio.run,
                                              committed_outputs(live.settings)).result()
    assert (decided, dead_letters) == (final, total - final), (
        f"Kafka holds {decided} scores and {dead_letters} dead letters; the page and "
        f"Prometheus say {final} scored of {total}")
    # Dead letters by error: the page's series are Prometheus's error codes.
    codes = {labels["error"] for labels, _v in live.prometheus(
        "sum by (error) (fraudstream_transactions_dead_lettered_total)")}
    assert codes, "no dead letters counted"
    legend = page.locator("#panel-dead_letters .legend-item")
    wait_until(lambda: {legend.nth(i).get_attribute("data-series")
                        for i in range(legend.count())} == codes, 30,
               f"dead-letter series on the page differ from Prometheus's {codes}")
    # Alerts: the page lists as many as Prometheus holds (firing and pending).
    shown = page.locator("#panel-alerts [data-alerts]")
    wait_until(lambda: shown.count() == 1 and shown.first.get_attribute("data-alerts")
               == str(len(prometheus_alerts(live.settings.prometheus_base_url))), 30,
               "the alerts on the page differ from Prometheus's /api/v1/alerts")
