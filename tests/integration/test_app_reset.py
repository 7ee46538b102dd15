"""``fraudstream demo --fresh`` against the real Kafka: what a reset deletes, what it keeps, and
that it refuses while a worker of the app is in its group."""

from __future__ import annotations

import pytest
from kafka.structs import OffsetAndMetadata, TopicPartition

from fraudstream import kafka_clients
from fraudstream.settings import Settings
from fraudstream.workers.app_reset import AppBusy, records_in, reset_app
from fraudstream.workers.pool import app_datadir
from fraudstream.workers.topics import card_changelog_spec, ensure_topics

pytestmark = pytest.mark.integration


def produce(settings: Settings, topic: str, count: int) -> None:
    producer = kafka_clients.sync_producer(settings)
    try:
        for i in range(count):
            producer.send(topic, key=b"C%d" % i, value=b"{}", partition=0)
        producer.flush()
    finally:
        producer.close()


def group_offsets(settings: Settings) -> dict[TopicPartition, int]:
    admin = kafka_clients.admin(settings)
    try:
        found = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id)
    finally:
        admin.close()
    return {tp: m.offset for tp, m in found.items()} if isinstance(found, dict) else {}


def test_a_reset_empties_the_apps_topics_group_and_tables_and_keeps_the_models(
        settings: Settings) -> None:
    changelog = card_changelog_spec(settings)
    ensure_topics(settings, [changelog])
    produce(settings, settings.topic_transactions, 30)
    produce(settings, changelog.name, 5)
    produce(settings, settings.topic_model_updates, 2)
    # The group's offsets of the earlier run: past where the new topic will start, and on a
    # topic the reset keeps (Kafka drops a deleted topic's offsets only sometimes; the group
    # must go whole).
    committer = kafka_clients.sync_consumer(settings, group_id=settings.app_id,
                                            enable_auto_commit=False)
    try:
        tx, models = (TopicPartition(settings.topic_transactions, 0),
                      TopicPartition(settings.topic_model_updates, 0))
        committer.assign([tx, models])
        committer.commit({tx: OffsetAndMetadata(30, "", -1),
                          models: OffsetAndMetadata(1, "", -1)})
    finally:
        committer.close()
    assert group_offsets(settings) == {tx: 30, models: 1}
    table = app_datadir(settings) / "worker-1" / "cards.db"
    table.parent.mkdir(parents=True)
    table.write_bytes(b"rocksdb")

    deleted = reset_app(settings)

    assert settings.topic_transactions in deleted and changelog.name in deleted
    assert settings.topic_model_updates not in deleted
    assert records_in(settings, settings.topic_transactions) == 0
    assert records_in(settings, changelog.name) == 0
    assert records_in(settings, settings.topic_model_updates) == 2
    assert group_offsets(settings) == {}
    assert not app_datadir(settings).exists()


def test_a_reset_is_refused_while_a_worker_of_the_app_is_in_its_group(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import fraudstream.workers.app_reset as app_reset

    monkeypatch.setattr(app_reset, "GROUP_EMPTY_WAIT_S", 2.0)
    ensure_topics(settings)
    produce(settings, settings.topic_transactions, 3)
    member = kafka_clients.sync_consumer(settings, settings.topic_transactions,
                                         group_id=settings.app_id,
                                         auto_offset_reset="earliest")
    try:
        polled = 0
        for _ in range(150):  # joined once it has been given the partitions and read them
            polled += sum(len(v) for v in member.poll(200).values())
            if polled >= 3:
                break
        assert polled >= 3
        with pytest.raises(AppBusy, match=r"still has members: workers .* stop them"):
            reset_app(settings)
    finally:
        member.close()
    assert records_in(settings, settings.topic_transactions) == 3, "nothing may be deleted"
