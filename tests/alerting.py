"""What the real-metrics alert tests share: a stack that runs the production rules with
shortened windows and posts to the project's API, steady traffic, and the questions a test asks
Prometheus and the API's webhook (tests/integration/test_alerts_*.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudstream.chaos.alert_windows import compress_rules
from fraudstream.deploy.local import LocalStack, StackConfig
from fraudstream.deploy.local.services import RULES_DIR
from fraudstream.feeds import outgoing
from fraudstream.settings import Settings
from fraudstream.simulator import SimulationConfig, simulate
from fraudstream.streaming import Outgoing, new_producer, produce_paced
from tests.conftest import wait_until
from tests.stack_fixtures import isolated

#: Labels for frauds and one transaction in LABEL_EVERY, as chargebacks come: at one label per
#: transaction, applying them to the merchants table alone stalled scoring (p99 about 2.5 s for
#: over a minute on this loaded 2-core machine).
LABEL_EVERY = 20


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def since(start: float) -> float:
    return round(time.monotonic() - start, 1)


def alert_settings(base: Settings, name: str, root: Path, api_port: int,
                   **extra: Any) -> Settings:
    """``base`` with topics, consumer group and state dir of this test's own (the stack's
    root, where the workers list their scrape targets), the API on ``api_port``, and the
    workers publishing their monitoring every second."""
    return isolated(base, name, state_dir=root, api_port=api_port, monitoring_interval_s=1.0,
                    **extra)


def alerting_stack(root: Path, app_id: str, time_scale: float, *, prometheus_port: int,
                   alertmanager_port: int, api_port: int,
                   redis_port: int = StackConfig.redis_port) -> LocalStack:
    """A stack (not started) whose Prometheus scrapes and evaluates every second the production
    rules with every ``for:`` and range selector divided by ``time_scale`` (a spike shorter
    than the scaled ``for:`` must not fire, as in production), and whose Alertmanager posts to
    the API on ``api_port``; its Redis (on ``redis_port``) runs when a test starts it."""
    compress_rules(RULES_DIR, root / "rules", time_scale)
    return LocalStack(StackConfig(
        root=root, prometheus_port=prometheus_port, alertmanager_port=alertmanager_port,
        webhook_url=f"http://127.0.0.1:{api_port}/api/alerts/webhook", scrape_interval="1s",
        evaluation_interval="1s", alert_group_wait="1s", alert_group_interval="1s",
        rules_dir=root / "rules", api_port=api_port, app_id=app_id, redis_port=redis_port))


class Traffic:
    """Simulated transactions and their labels at a steady rate, in a thread; ``drift`` switches
    to a dataset the simulator generated with ``amount_scale=5`` (what ``fraudstream simulate
    --live --amount-scale 5`` streams). ``forced_label`` (0 or 1, None: the truth) makes every
    label say the same (a label feed whose fraud flag lost its mapping).

    Every fraud is labelled, and one transaction in ``label_every`` of the others.
    """

    def __init__(self, settings: Settings, rate: float, label_every: int = LABEL_EVERY) -> None:
        self.settings = settings
        self.rate = rate
        self.label_every = label_every
        tag = uuid.uuid4().hex[:6]
        base = SimulationConfig(n_customers=400, n_terminals=800, nb_days=120, seed=7)
        self.normal = simulate(dataclasses.replace(base, id_prefix=f"n{tag}"))
        self.drifted = simulate(dataclasses.replace(base, amount_scale=5.0, id_prefix=f"d{tag}"))
        self.drift = threading.Event()
        self.forced_label: int | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _records(self) -> Iterator[Outgoing]:
        normal, drifted = outgoing(self.normal), outgoing(self.drifted)
        for i in itertools.count():
            rec = next(drifted if self.drift.is_set() else normal, None)
            if rec is None:
                return
            if rec.label is not None and b'"is_fraud":1' not in rec.label \
                    and i % self.label_every:
                rec = Outgoing(rec.key, rec.value, None)
            elif rec.label is not None and self.forced_label is not None:
                rec = Outgoing(rec.key, rec.value, forced(rec.label, self.forced_label))
            yield rec

    def _run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as exc:
            self.error = exc

    async def _produce(self) -> None:
        producer = new_producer(self.settings.kafka_bootstrap)
        await producer.start()
        try:
            await produce_paced(producer, self._records(),
                                topic=self.settings.topic_transactions,
                                labels_topic=self.settings.topic_labels, rate=self.rate,
                                label_delay_s=2.0, should_stop=self._stop.is_set)
        finally:
            await producer.stop()


def forced(label: bytes, is_fraud: int) -> bytes:
    """The label saying ``is_fraud`` whatever the truth."""
    return label.replace(b'"is_fraud":1', b'"is_fraud":%d' % is_fraud).replace(
        b'"is_fraud":0', b'"is_fraud":%d' % is_fraud)


@dataclass
class AlertView:
    """One app's alerts as Prometheus and the API's webhook see them."""

    app: str
    prometheus_port: int
    api_port: int

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = (f"http://127.0.0.1:{self.prometheus_port}/api/v1/query?"
               + urllib.parse.urlencode({"query": promql}))
        return list(get_json(url)["data"]["result"])

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def prometheus_alerts(self, name: str, **labels: str) -> list[dict[str, Any]]:
        """This app's alerts named ``name`` (pending or firing) that carry ``labels``; an
        ``app=""`` label selects alerts of no app (``absent()`` rules)."""
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/alerts"
        alerts = get_json(url)["data"]["alerts"]
        want = self._labels(name, labels)
        return [a for a in alerts if want.items() <= a["labels"].items()]

    def inactive(self, name: str, **labels: str) -> bool:
        """Neither pending nor firing in Prometheus."""
        return not self.prometheus_alerts(name, **labels)

    def firing_in_prometheus(self, name: str, **labels: str) -> bool:
        return any(a["state"] == "firing" for a in self.prometheus_alerts(name, **labels))

    def _labels(self, name: str, labels: dict[str, str]) -> dict[str, str]:
        want = {"alertname": name, "app": self.app, **labels}
        if not want["app"]:
            del want["app"]
        return want

    def webhook(self, name: str, **labels: str) -> tuple[bool, bool]:
        """(firing now, a resolution was received) for the alert, as the API's webhook saw it."""
        body = get_json(f"http://127.0.0.1:{self.api_port}/api/alerts")
        want = self._labels(name, labels)
        firing = any(want.items() <= a["labels"].items() for a in body["firing"])
        resolved = any(want.items() <= a["labels"].items() and a["status"] == "resolved"
                       for a in body["recent"])
        return firing, resolved

    def reached_webhook(self, name: str, **labels: str) -> bool:
        """The webhook has received the alert, firing or already resolved."""
        return any(self.webhook(name, **labels))

    def wait_firing(self, name: str, timeout: float, **labels: str) -> None:
        wait_until(lambda: self.firing_in_prometheus(name, **labels), timeout,
                   f"{name}{labels or ''} did not fire in Prometheus")

    def wait_inactive(self, name: str, timeout: float, **labels: str) -> None:
        """Until the alert is neither pending nor firing in Prometheus (resolved)."""
        wait_until(lambda: self.inactive(name, **labels), timeout,
                   f"{name}{labels or ''} stayed pending or firing in Prometheus")

    def wait_webhook(self, name: str, timeout: float, resolved: bool = False,
                     **labels: str) -> None:
        """Until the webhook holds the alert as firing (or has received its resolution, with
        ``resolved``)."""
        wait_until(lambda: self.webhook(name, **labels)[1 if resolved else 0], timeout,
                   f"the webhook did not receive {name}{labels or ''}"
                   + (" resolved" if resolved else ""))


def times_until_all(conditions: dict[str, Callable[[], bool]], timeout: float,
                    interval: float = 0.2) -> dict[str, float]:
    """Seconds until each condition first held (polled together); fails naming those that
    never did within ``timeout``."""
    start, seen = time.monotonic(), dict[str, float]()
    while time.monotonic() - start < timeout:
        for name, holds in conditions.items():
            if name not in seen and holds():
                seen[name] = since(start)
        if len(seen) == len(conditions):
            return seen
        time.sleep(interval)
    missing = sorted(set(conditions) - set(seen))
    raise AssertionError(f"not within {timeout:.0f}s: {', '.join(missing)} (met: {seen})")
