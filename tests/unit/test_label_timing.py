"""Labels published in event time: each when the stream passes its transaction's time + delay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fraudstream.cli import main
from fraudstream.streaming import DueLabel, Outgoing, interleave_labels, produce_paced


def tx(ts: int | None, label: bool = True) -> Outgoing:
    name = f"t{ts}".encode()
    return Outgoing(b"C1", name, b"L" + name if label else None, ts)


def names(items: list[Outgoing | DueLabel]) -> list[str]:
    return [item.value.decode() for item in items]


def test_each_label_comes_just_before_the_first_transaction_it_is_due_for() -> None:
    records = [tx(0), tx(100), tx(200), tx(250, label=False), tx(299), tx(300)]
    out = list(interleave_labels(records, 100))
    # t0's label is due at 100 (t100 may use it), t100's at 200, t200's at 300, t299's at
    # 399 and t300's at 400: never within the stream, so they come last.
    assert names(out) == ["t0", "Lt0", "t100", "Lt100", "t200", "t250", "t299", "Lt200", "t300",
                          "Lt299", "Lt300"]
    assert all(item.label is None for item in out if isinstance(item, Outgoing))


def test_a_label_without_event_time_follows_its_transaction() -> None:
    assert names(list(interleave_labels([tx(None), tx(5)], 10))) == ["tNone", "LtNone", "t5",
                                                                    "Lt5"]


class FakeProducer:
    """Records (topic, value) in send order; every send is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        self.sent.append((topic, value))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(type("Meta", (), {"partition": 0, "offset": len(self.sent)})())
        return done


def test_produce_paced_publishes_labels_in_event_time() -> None:
    producer = FakeProducer()
    records = [tx(0), tx(50), tx(100), tx(150)]
    stats = asyncio.run(produce_paced(producer, records, topic="tx", labels_topic="labels",
                                      rate=0, label_delay_s=0, label_event_delay_s=100))
    assert producer.sent == [("tx", b"t0"), ("tx", b"t50"), ("labels", b"Lt0"), ("tx", b"t100"),
                             ("labels", b"Lt50"), ("tx", b"t150"), ("labels", b"Lt100"),
                             ("labels", b"Lt150")]
    assert (stats.sent, stats.labels_sent) == (4, 4)


def test_a_negative_label_delay_is_refused_before_anything_runs(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--live", "--label-delay-days", "-1", "--customers", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--label-delay-days must be 0 or more" in err and len(err.splitlines()) == 1


def test_labels_on_time_give_a_worker_the_offline_features_even_for_a_busy_merchant() -> None:
    """A worker receiving the simulator's labels in event time (``interleave_labels``) holds
    the same merchant state as the offline executor, bucketed levels included, so its features
    equal the offline matrix row by row (a merchant with 3,000 labelled seconds a day)."""
    import numpy as np
    import orjson

    from fraudstream.features import FEATURE_NAMES, CardState, MerchantState, build_feature_matrix
    from fraudstream.features.definitions import DAY_S, compute_features
    from fraudstream.feeds import outgoing
    from fraudstream.simulator import Dataset

    rng = np.random.default_rng(11)
    n, t0, delay_days = 12_000, 1_522_540_800, 1
    ts = np.sort(rng.integers(t0, t0 + 4 * DAY_S, n))
    merchants = np.where(rng.random(n) < 0.8, "HOT", np.array(["M1", "M2"])[rng.integers(0, 2, n)])
    ds = Dataset(transaction_id=np.array([f"t{i}" for i in range(n)], dtype=object),
                 timestamp_s=ts.astype(np.int64),
                 card_id=np.array([f"C{i}" for i in rng.integers(0, 200, n)], dtype=object),
                 merchant_id=merchants.astype(object), amount=np.round(rng.random(n) * 100, 2),
                 is_fraud=(rng.random(n) < 0.05).astype(np.int8),
                 fraud_scenario=np.zeros(n, dtype=np.int8))
    offline = build_feature_matrix(ds.timestamp_s, ds.card_id, ds.merchant_id, ds.amount,
                                   ds.is_fraud, delay_days)

    cards: dict[str, CardState] = {}
    states: dict[str, MerchantState] = {}
    rows = []
    for item in interleave_labels(outgoing(ds), delay_days * DAY_S):
        body = orjson.loads(item.value)
        merchant = states.setdefault(body["merchant_id"], MerchantState())
        if isinstance(item, DueLabel):
            merchant.observe_label(int(ts[int(body["transaction_id"][1:])]), bool(body["is_fraud"]))
            continue
        assert item.ts is not None
        card = cards.setdefault(body["card_id"], CardState())
        rows.append(compute_features(item.ts, body["amount"], card, merchant, delay_days))
    assert states["HOT"].levels[1].times, "the busy merchant's labels reached the minute level"
    np.testing.assert_array_equal(np.array(rows), offline)
    assert offline[:, FEATURE_NAMES.index("merchant_nb_tx_1d")].max() > 2000
