"""The HTTP API with fakes for Kafka: tokens, validation, decisions, alerts, metrics, health."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import httpx
import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError, NotLeaderForPartitionError
from starlette.testclient import TestClient  # runs on httpx2 (a dev dependency)

import fraudstream.api.app as api_app
import fraudstream.api.decisions as api_decisions
from fraudstream.api.app import Background, create_app
from fraudstream.api.decision_cache import DecisionCache
from fraudstream.settings import Settings
from tests.conftest import wait_until

TOKEN = "s3cret-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD = (b'{"transaction_id": "tx-1", "timestamp": "2024-05-01T10:00:00Z", '
        b'"card_id": "card-\xc3\xa9", "merchant_id": "m-7", "amount": 12.5, "extra": [1]}')


class FakeProducer:
    """Records what would have gone to Kafka."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.started = self.stopped = False
        self.fail: Exception | None = None
        self.refuse: Exception | None = None
        self.hang = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes | None = None,
                   key: bytes | None = None) -> asyncio.Future[Any]:
        if self.refuse is not None:
            raise self.refuse
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail is not None:
            delivery.set_exception(self.fail)
        elif not self.hang:
            self.sent.append((topic, value, key))
            delivery.set_result(SimpleNamespace(partition=3, offset=len(self.sent) - 1))
        return delivery


def score(tid: str, decision: str = "approve") -> bytes:
    return orjson.dumps({"transaction_id": tid, "card_id": "card-1", "score": 0.12,
                         "decision": decision, "model_version": "v1", "degraded": False,
                         "worker": "w1", "scored_at": "2024-05-01T10:00:01.000Z",
                         "ingested_at_ms": 1714557600000, "reasons": []})


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def cache() -> DecisionCache:
    return DecisionCache(max_entries=100)


def make_client(producer: FakeProducer, cache: DecisionCache, token: str = TOKEN,
                client: tuple[str, int] = ("testclient", 50000),
                base_url: str = "http://testserver", **settings: Any) -> TestClient:
    app = create_app(Settings(api_token=token, **settings), producer=producer, decisions=cache,
                     start_background=False)
    return TestClient(app, client=client, base_url=base_url)


@pytest.fixture
def client(producer: FakeProducer, cache: DecisionCache) -> Iterator[TestClient]:
    with make_client(producer, cache, max_message_bytes=1024) as c:
        yield c


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"},
                                     {"Authorization": f"Basic {TOKEN}"}])
def test_missing_or_wrong_token_is_401(client: TestClient, producer: FakeProducer,
                                       headers: dict[str, str]) -> None:
    resp = client.post("/api/transactions", content=GOOD, headers=headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert producer.sent == []


def test_mutations_refused_when_no_token_is_configured(producer: FakeProducer,
                                                       cache: DecisionCache) -> None:
    with make_client(producer, cache, token="") as c:
        resp = c.post("/api/transactions", content=GOOD, headers=AUTH)
        assert resp.status_code == 503
        assert "FRAUDSTREAM_API_TOKEN" in resp.json()["detail"]
        assert c.post("/api/transactions", content=GOOD,
                      headers={"Authorization": "Bearer "}).status_code == 503
    assert producer.sent == []


def test_valid_transaction_is_produced_verbatim_keyed_by_card(client: TestClient,
                                                              producer: FakeProducer) -> None:
    exact = (b'{"transaction_id": "tx-1", "timestamp": "2024-05-01T10:00:00Z", '
             b'"card_id": "card-\xc3\xa9", "merchant_id": "m-7", "amount": 12.5, '
             b'"country": "FR"}')
    resp = client.post("/api/transactions", content=exact, headers=AUTH)
    assert resp.status_code == 202
    assert resp.json() == {"transaction_id": "tx-1", "status": "accepted", "partition": 3,
                           "offset": 0}
    assert producer.sent == [("transactions", exact, "card-é".encode())]


def test_fields_outside_the_contract_never_reach_kafka(client: TestClient,
                                                       producer: FakeProducer) -> None:
    body = orjson.dumps({"transaction_id": "tx-2", "timestamp": "2024-05-01T10:00:00Z",
                         "card_id": "c", "merchant_id": "m", "amount": 3, "channel": "web",
                         "pan": "4111111111111111", "cvv": "123", "extra": [1]})
    resp = client.post("/api/transactions", content=body, headers=AUTH)
    assert resp.status_code == 202 and resp.json()["dropped_fields"] == 3
    [(_topic, value, _key)] = producer.sent
    assert value is not None and b"4111" not in value and b"123" not in value
    assert orjson.loads(value) == {"transaction_id": "tx-2", "timestamp": "2024-05-01T10:00:00Z",
                                   "card_id": "c", "merchant_id": "m", "amount": 3,
                                   "channel": "web"}


def test_kafka_refusing_or_not_confirming_is_503_or_504(client: TestClient,
                                                       producer: FakeProducer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    producer.refuse = KafkaTimeoutError()
    resp = client.post("/api/transactions", content=GOOD, headers=AUTH)
    assert resp.status_code == 503 and resp.json()["error"] == "kafka_unavailable"
    producer.refuse, producer.fail = None, NotLeaderForPartitionError()
    resp = client.post("/api/transactions", content=GOOD, headers=AUTH)
    assert resp.status_code == 504 and resp.json()["error"] == "delivery_unconfirmed"
    monkeypatch.setattr(api_decisions, "SEND_TIMEOUT_S", 0.05)
    producer.fail, producer.hang = None, True
    resp = client.post("/api/transactions", content=GOOD, headers=AUTH)
    assert resp.status_code == 504 and "check GET /api/decisions" in resp.json()["reason"]
    assert "fraudstream_api_transactions_submitted_total 0.0" in client.get("/metrics").text


@pytest.mark.parametrize(("body", "code"), [
    (b'{"transaction_id": "tx-1", "amount": ', "invalid_json"),
    (b'{"transaction_id": "tx-1", "timestamp": "2024-05-01T10:00:00Z", "card_id": "c", '
     b'"amount": 1}', "missing_field"),
    (GOOD.replace(b"12.5", b"-3"), "bad_amount"),
    (GOOD.replace(b"12.5", b'"NaN"'), "bad_amount"),
    (GOOD.replace(b"[1]", b'"' + b"x" * 2000 + b'"'), "oversized"),
    (b"", "empty_record"),
    (b"[1, 2]", "not_an_object"),
])
def test_bad_transactions_are_422_with_their_code(client: TestClient, producer: FakeProducer,
                                                  body: bytes, code: str) -> None:
    resp = client.post("/api/transactions", content=body, headers=AUTH)
    assert resp.status_code == 422
    assert resp.json()["error"] == code
    assert resp.json()["reason"]
    assert producer.sent == []


def test_oversized_body_without_content_length_is_cut_off(client: TestClient,
                                                          producer: FakeProducer) -> None:
    def chunks() -> Iterator[bytes]:
        yield GOOD[:-1]
        yield b"x" * 4096

    resp = client.post("/api/transactions", content=chunks(), headers=AUTH)
    assert resp.status_code == 422 and resp.json()["error"] == "oversized"
    assert producer.sent == []


def test_decision_404_then_200_once_the_cache_is_fed(client: TestClient,
                                                     cache: DecisionCache) -> None:
    resp = client.get("/api/decisions/tx-9")
    assert resp.status_code == 404
    assert resp.json() == {"detail": "no decision yet for transaction tx-9; "
                                     "it may still be in flight"}
    assert cache.feed(score("tx-9", "review"))
    assert not cache.feed(b"not json") and not cache.feed(b'{"no": "id"}')
    resp = client.get("/api/decisions/tx-9")
    assert resp.status_code == 200
    assert resp.json() == orjson.loads(score("tx-9", "review"))
    cache.feed(score("tx-9", "decline"))
    assert client.get("/api/decisions/tx-9").json()["decision"] == "decline"


def test_wait_s_returns_when_the_decision_arrives_from_another_thread(
        client: TestClient, cache: DecisionCache) -> None:
    timer = threading.Timer(0.2, cache.feed, [score("tx-late")])
    timer.start()
    started = time.monotonic()
    resp = client.get("/api/decisions/tx-late", params={"wait_s": 10})
    timer.join()
    assert resp.status_code == 200 and resp.json()["transaction_id"] == "tx-late"
    assert time.monotonic() - started < 5


def test_wait_s_returns_when_fed_on_the_same_loop(producer: FakeProducer,
                                                  cache: DecisionCache) -> None:
    app = create_app(Settings(), producer=producer, decisions=cache, start_background=False)

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            pending = asyncio.create_task(http.get("/api/decisions/tx-2",
                                                   params={"wait_s": 10}))
            await asyncio.sleep(0.1)
            assert not pending.done()
            cache.feed(score("tx-2"))
            async with asyncio.timeout(2):
                return await pending

    assert asyncio.run(scenario()).json()["transaction_id"] == "tx-2"


def test_wait_s_times_out_and_is_bounded(client: TestClient) -> None:
    started = time.monotonic()
    assert client.get("/api/decisions/tx-x", params={"wait_s": 0.2}).status_code == 404
    assert time.monotonic() - started >= 0.2
    for bad in ("31", "-1", "nan"):
        assert client.get("/api/decisions/tx-x", params={"wait_s": bad}).status_code == 422


def test_cache_is_bounded_and_keeps_the_newest() -> None:
    cache = DecisionCache(max_entries=3)
    for i in range(5):
        cache.feed(score(f"t{i}"))
    cache.feed(score("t2", "decline"))
    cache.feed(score("t5"))
    assert len(cache) == 3
    # t2 was refreshed by its newer decision, so t3 (the oldest insert) went first.
    assert [i for i in range(6) if cache.get(f"t{i}") is not None] == [2, 4, 5]
    assert orjson.loads(cache.get("t2") or b"{}")["decision"] == "decline"


def alert(status: str, name: str = "ScoringLagHigh", fp: str = "abc") -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": name, "severity": "page"},
            "annotations": {"summary": "lag"}, "startsAt": "2024-05-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom", "fingerprint": fp}


def webhook(status: str, *alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "groupKey": "{}:{}", "status": status, "receiver": "fraudstream",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
            "alerts": list(alerts)}


def test_webhook_from_loopback_stores_firing_then_resolved(producer: FakeProducer,
                                                          cache: DecisionCache) -> None:
    with make_client(producer, cache, token="", client=("127.0.0.1", 40000),
                     base_url="http://127.0.0.1:8000") as c:
        resp = c.post("/api/alerts/webhook", json=webhook("firing", alert("firing"),
                                                          alert("firing", "DlqRate", "def")))
        assert resp.status_code == 200, resp.text
        got = c.get("/api/alerts").json()
        assert [a["labels"]["alertname"] for a in got["firing"]] == ["ScoringLagHigh", "DlqRate"]
        assert len(got["recent"]) == 2
        assert c.post("/api/alerts/webhook",
                      json=webhook("resolved", alert("resolved"))).status_code == 200
        got = c.get("/api/alerts").json()
        assert [a["labels"]["alertname"] for a in got["firing"]] == ["DlqRate"]
        assert [a["status"] for a in got["recent"]] == ["resolved", "firing", "firing"]
        assert c.post("/api/alerts/webhook", json={"status": "firing"}).status_code == 422
        metrics = c.get("/metrics").text
    assert 'fraudstream_api_alerts_received_total{status="firing"} 2.0' in metrics
    assert 'fraudstream_api_alerts_received_total{status="resolved"} 1.0' in metrics


def test_webhook_keeps_only_the_last_500(producer: FakeProducer, cache: DecisionCache) -> None:
    with make_client(producer, cache, client=("::1", 40000), base_url="http://[::1]:8000") as c:
        body = webhook("firing", *[alert("firing", fp=str(i)) for i in range(600)])
        assert c.post("/api/alerts/webhook", json=body).status_code == 200
        got = c.get("/api/alerts").json()
    assert len(got["recent"]) == 500 and got["recent"][0]["fingerprint"] == "599"


def test_webhook_from_elsewhere_needs_the_token(client: TestClient) -> None:
    body = webhook("firing", alert("firing"))
    assert client.post("/api/alerts/webhook", json=body).status_code == 401
    assert client.post("/api/alerts/webhook", json=body, headers=AUTH).status_code == 200
    assert len(client.get("/api/alerts").json()["firing"]) == 1


def test_metrics_count_requests_by_route_template(client: TestClient,
                                                  cache: DecisionCache) -> None:
    client.get("/api/decisions/a")
    client.get("/api/decisions/b")
    client.post("/api/transactions", content=GOOD, headers=AUTH)
    client.get("/nowhere")
    cache.feed(score("c"))
    text = client.get("/metrics").text
    assert ('fraudstream_api_requests_total{route="/api/decisions/{transaction_id}",'
            'status="404"} 2.0') in text
    assert 'fraudstream_api_requests_total{route="/api/transactions",status="202"} 1.0' in text
    assert 'fraudstream_api_requests_total{route="unmatched",status="404"} 1.0' in text
    assert "fraudstream_api_transactions_submitted_total 1.0" in text
    assert "fraudstream_api_decisions_cached 1.0" in text


def test_health_is_503_without_background_work(client: TestClient) -> None:
    resp = client.get("/health")
    assert resp.status_code == 503
    assert resp.json()["status"] == "unavailable" and resp.json()["down"]


class FakeReader:
    """Stands in for TopicReader: hands out queued records, or fails to start."""

    fail_with: ClassVar[Exception | None] = None
    unreachable: ClassVar[bool] = False
    records: ClassVar[list[bytes]] = []

    def __init__(self, bootstrap: str, topics: list[str], *, from_beginning: bool) -> None:
        assert topics == ["scores"] and from_beginning is False
        self.consumer = SimpleNamespace(assignment=lambda: {("scores", 0)},
                                        end_offsets=self.end_offsets)
        self.stopped = False

    async def end_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        if FakeReader.unreachable:
            await asyncio.sleep(10)
        return dict.fromkeys(partitions, 0)

    async def start(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def stop(self) -> None:
        self.stopped = True

    async def poll(self, timeout_s: float = 0.2) -> list[tuple[str, None, bytes, int]]:
        if not FakeReader.records:
            await asyncio.sleep(0.01)
            return []
        out = [("scores", None, v, 0) for v in FakeReader.records]
        FakeReader.records = []
        return out


def test_background_feeds_cache_and_health_turns_ok(monkeypatch: pytest.MonkeyPatch,
                                                    producer: FakeProducer,
                                                    cache: DecisionCache) -> None:
    monkeypatch.setattr(api_app, "TopicReader", FakeReader)
    monkeypatch.setattr(FakeReader, "records", [score("tx-bg")])
    app = create_app(Settings(api_token=TOKEN), producer=producer, decisions=cache)
    with TestClient(app) as c:
        wait_until(lambda: c.get("/health").status_code == 200, 5, "health never turned ok",
                   interval=0.02)
        assert c.get("/health").json() == {"status": "ok"}
        assert producer.started
        assert c.get("/api/decisions/tx-bg", params={"wait_s": 2}).status_code == 200
        assert c.post("/api/transactions", content=GOOD, headers=AUTH).status_code == 202
    assert producer.stopped


def test_health_says_what_is_down_when_kafka_fails(monkeypatch: pytest.MonkeyPatch,
                                                   producer: FakeProducer,
                                                   cache: DecisionCache) -> None:
    monkeypatch.setattr(api_app, "TopicReader", FakeReader)
    monkeypatch.setattr(FakeReader, "fail_with", ConnectionError("broker down"))
    app = create_app(Settings(), producer=producer, decisions=cache)
    with TestClient(app) as c:
        wait_until(lambda: "ConnectionError" in c.get("/health").text, 5, "no error reported",
                   interval=0.02)
        resp = c.get("/health")
    assert resp.status_code == 503
    assert set(resp.json()["down"]) == {"scores_consumer"}
    # The error's type, never its text (it can name addresses): that is in the log.
    assert resp.json()["down"]["scores_consumer"] == "kafka_connecting (ConnectionError)"
    assert "broker down" not in resp.text and "9092" not in resp.text


def test_probe_stops_when_cancelled_as_kafka_answers() -> None:
    """A cancel landing as the ListOffsets answer arrives still stops the probe.

    asyncio.wait_for on Python 3.11 returned the answer and dropped such a cancel, so the
    probe went on and the API's shutdown waited for it forever (seen once in CI).
    """
    background = Background(Settings(), DecisionCache())
    kafka_hangs = False  # set to stop a probe that missed its cancel, without another race

    async def answer(partitions: list[Any]) -> dict[Any, int]:
        await asyncio.sleep(3600 if kafka_hangs else 0)
        return dict.fromkeys(partitions, 0)

    async def scenario() -> int:
        still_running = 0
        for _ in range(100):
            probe = asyncio.create_task(background._probe(
                SimpleNamespace(end_offsets=answer), [("scores", 0)]))
            await asyncio.sleep(0.001)
            probe.cancel()
            done, _pending = await asyncio.wait([probe], timeout=1)
            if not done:
                still_running += 1
                nonlocal kafka_hangs
                kafka_hangs = True
                await asyncio.sleep(0.01)
                probe.cancel()
                await asyncio.wait([probe], timeout=1)
                kafka_hangs = False
        return still_running

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api_app, "PROBE_INTERVAL_S", 0)
        assert asyncio.run(scenario()) == 0


def test_health_turns_503_when_kafka_stops_answering(monkeypatch: pytest.MonkeyPatch,
                                                    producer: FakeProducer,
                                                    cache: DecisionCache) -> None:
    monkeypatch.setattr(api_app, "TopicReader", FakeReader)
    monkeypatch.setattr(api_app, "PROBE_INTERVAL_S", 0.02)
    monkeypatch.setattr(api_app, "PROBE_TIMEOUT_S", 0.05)
    app = create_app(Settings(), producer=producer, decisions=cache)
    with TestClient(app) as c:
        wait_until(lambda: c.get("/health").status_code == 200, 5, "health never turned ok",
                   interval=0.02)
        monkeypatch.setattr(FakeReader, "unreachable", True)
        wait_until(lambda: c.get("/health").status_code == 503, 5, "health stayed ok",
                   interval=0.02)
        assert c.get("/health").json()["down"]["kafka"].startswith("kafka_unreachable")
        monkeypatch.setattr(FakeReader, "unreachable", False)
        wait_until(lambda: c.get("/health").status_code == 200, 5, "health did not recover",
                   interval=0.02)
