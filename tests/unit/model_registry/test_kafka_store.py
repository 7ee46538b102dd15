"""``kafka:`` store URIs, without a broker (tests/integration/test_kafka_model_store.py has one)."""

from __future__ import annotations

import pytest

from fraudstream.model_registry.errors import InvalidRequest
from fraudstream.model_registry.kafka_store import MAX_RECORD_BYTES, KafkaStore
from fraudstream.model_registry.stores import open_store, open_stores, store_labels
from fraudstream.settings import Settings


@pytest.mark.parametrize(("uri", "topic"), [("kafka:", "model-store"),
                                            ("kafka:models-eu", "models-eu"),
                                            ("kafka:///models-eu", "models-eu")])
def test_a_kafka_uri_names_its_topic_or_takes_the_settings_one(uri: str, topic: str) -> None:
    store = open_store(uri, Settings())
    assert isinstance(store, KafkaStore)
    assert store.topic == topic and store.uri == f"kafka:{topic}"


def test_a_kafka_uri_without_settings_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="needs the Kafka settings"):
        open_store("kafka:")


def test_kafka_stores_are_labelled_by_their_scheme() -> None:
    stores = open_stores("kafka:,memory://a", Settings())
    assert store_labels(stores) == ["kafka", "memory"]


def test_a_value_over_the_record_limit_is_refused_before_any_connection() -> None:
    store = KafkaStore(Settings(bootstrap_servers="127.0.0.1:1"), "t")
    with pytest.raises(InvalidRequest, match=f"{MAX_RECORD_BYTES:,}-byte record limit"):
        store.put("versions/v/model.skops", bytes(MAX_RECORD_BYTES + 1))
    assert store._producer is None
