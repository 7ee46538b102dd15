"""The Faust application of a scoring worker: topics, feature tables, agents and web views."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, cast

import faust
import orjson
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fraudstream import kafka_clients
from fraudstream.features import FEATURE_NAMES
from fraudstream.features.windows import DAY_S
from fraudstream.kept_bytes import dumps_kept
from fraudstream.monitoring.consumer_lag import ConsumerLag
from fraudstream.monitoring.drift_window import DriftMonitor
from fraudstream.monitoring.live_performance import LivePerformance
from fraudstream.monitoring.metrics import WorkerMetrics
from fraudstream.settings import Settings
from fraudstream.workers.arrivals import observe_arrivals
from fraudstream.workers.batch_protocol import InputContinuity, OwnershipStarts, ScoringBatches
from fraudstream.workers.batch_reader import BatchReader
from fraudstream.workers.card_expiry import CardExpiry
from fraudstream.workers.card_record import CardRecord
from fraudstream.workers.card_store import CardRocksStore, table_store
from fraudstream.workers.changelog_tail import (
    holds_records,
    last_record_offsets,
    read_committed_range,
)
from fraudstream.workers.continuity import DeliveryChaos
from fraudstream.workers.faust_bridge import (
    ConsumerOffsets,
    after_each_seek,
    aiokafka_producer,
    check_internals,
    commit_outside_faust,
    committed_offset,
    deliver_undecoded,
    deliver_without_tasks,
    end_recovery_at,
    exact_recovery_targets,
    note_committed,
    recovery_stuck_past_targets,
    reset_committed,
    retry_concurrent_transactions_sooner,
    stamp_arrivals,
    table_applied_offset,
    tune_worker_consumer,
    use_idempotent_producer,
)
from fraudstream.workers.fenced_outputs import FencedBatchSink, FencedOutputs
from fraudstream.workers.hot_swap import announce_model
from fraudstream.workers.merchant_labels import MerchantLabelApplier, labels_in, route, route_fenced
from fraudstream.workers.merchant_states import MerchantStates
from fraudstream.workers.model_guard import ChaosState, ModelGuard
from fraudstream.workers.output import KafkaBatchSink, Sink, key_partition
from fraudstream.workers.pool import worker_datadir
from fraudstream.workers.processor import RawRecord, ScoringProcessor, Topics
from fraudstream.workers.restore_status import RestoreWatch
from fraudstream.workers.scoring import Scorer
from fraudstream.workers.stable_offsets import StableOffsets
from fraudstream.workers.state_tables import ChangelogTable
from fraudstream.workers.takeover import TakeoverScan
from fraudstream.workers.time_slices import Slices
from fraudstream.workers.topics import COMPACT_CHANGELOG, merchant_labels_topic

if TYPE_CHECKING:
    from fraudstream.model_registry.registry import ModelRegistry

logger = logging.getLogger(__name__)


#: How long the transactions topic's partition count is trusted before it is read again.
PARTITION_COUNT_TTL_S = 60.0

#: Seconds between two steps of the idle-card sweep (one chunk of each owned partition each).
CARD_EXPIRY_INTERVAL_S = 10.0

#: Seconds between two looks at a recovery waiting for an offset its consumer read past.
RECOVERY_SETTLE_S = 2.0

#: Most labels in one batch of the label path (its window: ``label_batch_window_s``).
LABEL_BATCH_MAX = 5000

#: Exit status of a worker that could not write to Kafka (the supervisor restarts it).
EXIT_KAFKA_UNAVAILABLE = 70


class JsonTableView(MutableMapping[bytes, Any]):
    """A Faust table of raw bytes seen as JSON values: Faust never (de)serialises them itself."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: bytes) -> Any:
        raw = self.table[key]
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)

    def get(self, key: bytes, default: Any = None) -> Any:
        raw = self.table.get(key)
        return default if raw is None else orjson.loads(raw)

    def __setitem__(self, key: bytes, value: Any) -> None:
        self.table[key] = dumps_kept(value)

    def __delitem__(self, key: bytes) -> None:
        del self.table[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


def faust_settings(settings: Settings, index: int,
                   instance_id: str | None = None) -> dict[str, Any]:
    """Faust configuration tuned for batching, loopback and fast failover.

    ``instance_id`` makes the worker a static group member (KIP-345): a replacement started
    with the same id takes over its partitions at once, without waiting for the session to
    expire and without a rebalance of the other workers.
    """
    return {
        **kafka_clients.faust_broker_settings(settings),
        "store": "memory://",
        "web_host": settings.bind_host,
        "web_bind": settings.bind_host,
        "web_port": settings.worker_web_port + index,
        "web_in_thread": False,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_allow_declare": True,
        "consumer_auto_offset_reset": "earliest",
        "consumer_group_instance_id": instance_id,
        "broker_session_timeout": 6.0,
        "broker_heartbeat_interval": 1.0,
        "broker_request_timeout": 40.0,
        "broker_commit_interval": 1.0,
        "broker_max_poll_records": 2000,
        "producer_linger": 0.005,
        "producer_max_batch_size": 262_144,
        "producer_max_request_size": 2_097_152,
        "stream_buffer_maxsize": 8192,
        "table_standby_replicas": settings.table_standby_replicas,
        # On revocation, finish what is buffered before the partitions move: otherwise the old
        # and the new owner could both decide the same records.
        "stream_wait_empty": True,
        # Per app and slot: a worker restarted in its slot (or the standby given it) finds
        # the card table its predecessor kept on disk (workers.card_store).
        "datadir": str(worker_datadir(settings, index)),
        "worker_redirect_stdouts": False,
    }


class WorkerApp:
    """A Faust app wired to one ``ScoringProcessor``; ``app`` is what ``faust.Worker`` runs."""

    def __init__(self, settings: Settings, index: int, scorer: Scorer,
                 metrics: WorkerMetrics, registry: ModelRegistry | None = None,
                 registry_generation: int = 0, instance_id: str | None = None) -> None:
        self.settings = settings
        self.index = index
        self.metrics = metrics
        self.name = f"worker-{index}@{socket.gethostname()}"
        self.ready = False
        check_internals()
        use_idempotent_producer()
        # Aborted transactions (a fenced worker's outputs and changelog, an upstream
        # producer's aborted input) are never read, by streams or by table recovery; offset
        # lookups do not queue behind a long fetch (recovery at every rebalance).
        tune_worker_consumer()
        deliver_without_tasks()
        stamp_arrivals()
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        if self.exactly_once:
            retry_concurrent_transactions_sooner()
            exact_recovery_targets(lambda ends: last_record_offsets(settings, ends))
        app = self.app = faust.App(settings.app_id,
                                         **faust_settings(settings, index, instance_id))
        self.restore = RestoreWatch(app)
        self.transactions = app.topic(settings.topic_transactions, key_serializer="raw",
                                      value_serializer="raw")
        self.labels = app.topic(settings.topic_labels, key_serializer="raw",
                                value_serializer="raw")
        self.merchant_labels = app.topic(merchant_labels_topic(settings), internal=True,
                                         key_serializer="raw", value_serializer="raw",
                                         partitions=settings.partitions)
        # The three agents read raw bytes off ``event.message``: no decoding on the way.
        deliver_undecoded(app, [settings.topic_transactions, settings.topic_labels,
                                merchant_labels_topic(settings)],
                          producer_buffer=not self.exactly_once)
        # Card state is co-partitioned with the transactions (both keyed by card_id).
        store, options = table_store(settings.table_store)
        self.card_table = app.Table("cards", default=None, partitions=settings.partitions,
                                    key_type=bytes, value_type=bytes, store=store,
                                    options=options, extra_topic_configs=COMPACT_CHANGELOG)
        # Merchant risk is read by every worker, written only by the owner of the merchant.
        # Compacted like the card changelog: every worker replays this one at each start, and
        # uncompacted (one record per merchant per label batch) it had reached 258,000
        # records for 4,000 merchants after a 5-minute demo (a 128 s replay).
        self.merchants = JsonTableView(app.GlobalTable(
            "merchants", default=None, partitions=1, recovery_buffer_size=1, key_type=bytes,
            value_type=bytes, use_partitioner=True, extra_topic_configs=COMPACT_CHANGELOG))
        # Exactly once: per owned input partition a transactional producer whose id names the
        # partition; a new owner's start fences this worker's writes for it.
        def transactional_producer(tid: str) -> Any:
            return kafka_clients.aio_producer(
                settings, transactional_id=tid, enable_idempotence=True, acks="all",
                linger_ms=5, max_batch_size=262_144, max_request_size=2_097_152,
                client_id=f"fraudstream-{tid}")

        self.outputs = FencedOutputs(
            app_id=settings.app_id, input_topic=settings.topic_transactions,
            group_id=settings.app_id, producer_factory=transactional_producer)
        # The label path, fenced the same way per labels and per merchant-labels partition
        # (workers.merchant_labels).
        self.label_outputs = FencedOutputs(
            app_id=settings.app_id, input_topic=settings.topic_labels,
            group_id=settings.app_id, producer_factory=transactional_producer)
        self.label_lock = asyncio.Lock()
        # One reader per agent: a reader reads one partition at a time.
        merchants_changelog = self.merchants.table.changelog_topic.get_topic_name()
        self._label_reader = TakeoverScan(settings, [], reads=[settings.topic_labels])
        self._changelog_reader = TakeoverScan(settings, [], reads=[merchants_changelog])
        self._merchant_label_partitions: int | None = None
        self.applier = MerchantLabelApplier(
            outputs=FencedOutputs(
                app_id=settings.app_id, input_topic=self.merchant_labels.get_topic_name(),
                group_id=settings.app_id, producer_factory=transactional_producer),
            changelog_topic=merchants_changelog, table=self.merchants.table,
            decode=orjson.loads,
            on_written=lambda key, stored, state: self.processor.merchants.prime(key, stored,
                                                                                 state),
            applied_offset=lambda: table_applied_offset(app, self.merchants.table),
            changelog_target=self._merchants_changelog_target,
            changelog_records=functools.partial(read_committed_range, settings,
                                                merchants_changelog, 0))
        # At least once, the sink reaches the producer only when a batch flushes, after the
        # app has started.
        self.sink: Sink = (FencedBatchSink(self.outputs) if self.exactly_once
                           else KafkaBatchSink(_LazyProducer(app)))
        self.chaos = ChaosState()
        self.delivery_chaos = DeliveryChaos()
        self.guard = ModelGuard(metrics, timeout_s=settings.model_timeout_s, chaos=self.chaos)
        drift = DriftMonitor.from_settings(metrics, settings)
        self.processor = ScoringProcessor(
            scorer=scorer, cards=ChangelogTable(self.card_table, self.sink),
            merchants=MerchantStates(self.merchants.table, orjson.loads,
                                     committed=self.applier.committed_state
                                     if self.exactly_once else None),
            sink=self.sink,
            topics=Topics(settings.topic_scores, settings.topic_dlq), metrics=metrics,
            worker_name=self.name, label_delay_days=settings.label_delay_days,
            max_message_bytes=settings.max_message_bytes, guard=self.guard, drift=drift,
            emit_features=settings.emit_features, max_clock_skew_s=settings.max_clock_skew_s)
        # Held by the scoring step and the expiry sweep: a card is never removed between a
        # batch reading it and writing it back.
        self.state_lock = asyncio.Lock()
        self.expiry = CardExpiry(cast(ChangelogTable, self.processor.cards), self.state_lock,
                                 idle_s=settings.card_idle_days * DAY_S)
        self.live = LivePerformance(metrics, self._decision_of,
                                    publish_interval_s=settings.monitoring_interval_s)
        self.lag = ConsumerLag(
            metrics.consumer_lag, lambda tp: app.consumer.highwater(tp),
            lambda tp: committed_offset(app.consumer, tp),
            lambda tp, start, end: holds_records(settings, tp, start, end))
        announce_model(metrics, scorer)
        # The batch protocol (workers.batch_protocol): where each ownership starts (under
        # exactly once read after its fence, workers.stable_offsets), continuity per input
        # topic, and the takeover read of a predecessor's outputs (at least once).
        self._takeover = TakeoverScan(settings, [settings.topic_scores, settings.topic_dlq],
                                      reads=[settings.topic_transactions])
        self._stable_offsets = StableOffsets(settings, settings.app_id)
        consumer_offsets = ConsumerOffsets(app)
        self.starts = OwnershipStarts(consumer_offsets)
        self.scoring = ScoringBatches(
            continuity=InputContinuity(settings.topic_transactions, self._takeover,
                                       self.starts, metrics),
            outputs_read=self._takeover, processor=self.processor, consumer=consumer_offsets,
            open_partitions=lambda: self.outputs.partitions, metrics=metrics,
            exactly_once=self.exactly_once)
        self.label_continuity = InputContinuity(settings.topic_labels, self._label_reader,
                                                self.starts, metrics)
        self._settling: asyncio.Future[None] | None = None
        #: Committed offsets found past their partition's end, already logged and counted.
        self._past_end_seen: set[tuple[str, int, int]] = set()
        self.swapper = None
        if registry is not None:
            from fraudstream.workers.hot_swap import ModelSwapper

            self.swapper = ModelSwapper(
                bootstrap=settings, topic=settings.topic_model_updates,
                registry=registry, processor=self.processor, metrics=metrics,
                expected_features=FEATURE_NAMES, start_generation=registry_generation)
        self._register()
        if settings.chaos_hooks:
            self._register_chaos()

    async def _process_or_exit(self, batch: list[RawRecord]) -> None:
        """Process a batch completely, or exit before any of it is acknowledged.

        Only Kafka being unavailable justifies the exit. A record Kafka refuses (too large,
        invalid) or one the code fails on is dead-lettered, in part if need be: exiting would
        hand the same record to the next worker, and one record would take the group down.
        """
        try:
            async with self.state_lock:
                # Inside the shielded task: a stop during a gap read must not ack unread records.
                await self.scoring.run(batch)
        except BaseException as exc:
            # Output could not be written (or a gap in the input could not be read): exit
            # before these offsets are acknowledged, so the group hands the partitions (and
            # the batch) to a healthy worker.
            logger.critical("cannot finish a batch, exiting error=%r", exc)
            os._exit(EXIT_KAFKA_UNAVAILABLE)

    async def _route_labels_or_exit(self, batch: list[RawRecord]) -> None:
        """Hop 1 of the label path under exactly-once (workers.merchant_labels): each labels
        partition's merchant-labels records and consumed offset in one transaction; exit
        before acknowledging when Kafka fails otherwise than by fencing."""
        from faust.types import TP

        try:
            async with self.label_lock:
                topic = self.settings.topic_labels
                batch = await self.label_continuity.complete(batch)
                routed = route(batch, self.merchant_labels.get_topic_name(),
                               await self._merchant_labels_partitions(), time.time(),
                               self.settings.max_clock_skew_s)
                done = await route_fenced(self.label_outputs, routed)
                if done.failure is not None:
                    raise done.failure
                self.label_continuity.processed(
                    [r for r in batch if r.partition in done.partitions])
                for partition in done.partitions:
                    note_committed(self.app.consumer, TP(topic, partition),
                                   routed.next_offsets[partition])
                fenced = sum(1 for r in batch if r.partition in done.fenced)
                self.metrics.fenced_records.inc(fenced)
                self.metrics.labels_applied.labels("rejected").inc(routed.rejected)
        except BaseException as exc:
            logger.critical("cannot route a batch of labels, exiting error=%r", exc)
            os._exit(EXIT_KAFKA_UNAVAILABLE)

    async def _apply_labels_or_exit(self, batch: list[RawRecord]) -> None:
        """Hop 2 of the label path under exactly-once: merchant states and the consumed
        offset in one transaction per merchant-labels partition; exit before acknowledging
        when Kafka fails otherwise than by fencing."""
        from faust.types import TP

        try:
            done = await self.applier.apply(batch)
        except BaseException as exc:
            logger.critical("cannot apply a batch of merchant labels, exiting error=%r", exc)
            os._exit(EXIT_KAFKA_UNAVAILABLE)
        topic = self.merchant_labels.get_topic_name()
        for partition, offset in done.committed.items():
            note_committed(self.app.consumer, TP(topic, partition), offset)
        self.metrics.labels_applied.labels("applied").inc(done.applied)
        self.metrics.labels_applied.labels("duplicate").inc(done.duplicates)
        self.metrics.labels_applied.labels("rejected").inc(done.rejected)
        self.metrics.fenced_records.inc(done.fenced)

    async def _merchant_labels_partitions(self) -> int:
        """Partitions of the merchant-labels topic (the setting until metadata has them)."""
        if self._merchant_label_partitions is None:
            try:
                found = await _LazyProducer(self.app).partitions_for(
                    self.merchant_labels.get_topic_name())
            except KafkaError as exc:
                logger.warning("merchant-labels partitions unknown error=%r", exc)
                found = None
            if not found:
                return self.settings.partitions
            self._merchant_label_partitions = len(found)
        return self._merchant_label_partitions

    async def _merchants_changelog_target(self) -> int:
        """The offset of the merchants changelog's last committed record now (-1: none)."""
        from aiokafka import TopicPartition

        tp = TopicPartition(self.merchants.table.changelog_topic.get_topic_name(), 0)
        end = await self._changelog_reader.log_end(tp.topic, tp.partition)
        return (await last_record_offsets(self.settings, {tp: end}))[tp]

    async def _partition_count(self) -> int | None:
        """Partitions of the transactions topic, from the producer's metadata (None: unknown)."""
        try:
            found = await _LazyProducer(self.app).partitions_for(
                self.settings.topic_transactions)
        except KafkaError as exc:
            logger.warning("partition count unknown, partition check off error=%r", exc)
            return None
        return len(found) if found else None

    def _decision_of(self, card: bytes, transaction_id: str) -> tuple[float, str, str] | None:
        """(score, decision, model version) the card's table entry remembers, if any."""
        stored = cast(ChangelogTable, self.processor.cards).get_stored(
            card, key_partition(card, self.processor.partitions or self.settings.partitions))
        found = CardRecord.decision_in(stored, transaction_id)
        if found is None or not found.decision:
            return None
        return found.score, found.decision, found.model_version

    def _register(self) -> None:
        app, s = self.app, self.settings

        @app.agent(self.transactions, name="score")
        async def score(stream: Any) -> None:
            partitions_read_at = 0.0
            async for taken in BatchReader.of_stream(app, stream, s.batch_size,
                                                     s.batch_window_s):
                observe_arrivals(taken.events, self.metrics.arrival_age,
                                 self.metrics.batch_wait)
                batch = taken.records
                if time.monotonic() - partitions_read_at > PARTITION_COUNT_TTL_S:
                    # The topic's real partition count (not the setting: a topic created
                    # elsewhere may have more), which decides where each key belongs.
                    count = await self._partition_count()
                    if count:
                        self.processor.partitions = count
                        partitions_read_at = time.monotonic()
                if s.chaos_hooks:
                    batch = self.delivery_chaos.apply(batch)
                await _finish(self._process_or_exit(batch))

        @app.agent(self.labels, name="route-labels")
        async def route_labels(stream: Any) -> None:
            sink = KafkaBatchSink(_LazyProducer(app))
            async for taken in BatchReader.of_stream(app, stream, LABEL_BATCH_MAX,
                                                     s.label_batch_window_s):
                async for r in Slices().each(taken.records):
                    self.live.observe_label(r.key, r.value)
                if self.exactly_once:
                    await _finish(self._route_labels_or_exit(taken.records))
                    self.live.maybe_publish()
                    continue
                routed = route(taken.records, self.merchant_labels.get_topic_name(),
                               await self._merchant_labels_partitions(), time.time(),
                               s.max_clock_skew_s)
                for records in routed.records.values():
                    for topic, key, value, partition in records:
                        sink.add(topic, key, value, partition)
                self.metrics.labels_applied.labels("rejected").inc(routed.rejected)
                await sink.flush()
                self.live.maybe_publish()

        @app.agent(self.merchant_labels, name="apply-labels")
        async def apply_labels(stream: Any) -> None:
            from fraudstream.features import MerchantState

            # The producer refreshes metadata only for topics it has sent to: without asking
            # for the changelog's partitions first, Faust's key_partition may find none and
            # every table write crash this agent, losing the labels.
            changelog = self.merchants.table.changelog_topic.get_topic_name()
            await _LazyProducer(app).partitions_for(changelog)
            async for taken in BatchReader.of_stream(app, stream, LABEL_BATCH_MAX,
                                                     s.label_batch_window_s):
                if self.exactly_once:
                    await _finish(self._apply_labels_or_exit(taken.records))
                    continue
                touched: dict[bytes, MerchantState] = {}
                applied = rejected = 0
                for r in taken.records:
                    labels = labels_in(r.key, r.value)
                    if labels is None:
                        rejected += 1
                        continue
                    for key, ts, is_fraud in labels:
                        state = touched.get(key)
                        if state is None:
                            state = touched[key] = MerchantState.from_wire(
                                self.merchants.get(key))
                        state.observe_label(ts, bool(is_fraud))
                    applied += len(labels)
                for key, state in touched.items():
                    self.merchants[key] = state.to_wire()
                self.metrics.labels_applied.labels("applied").inc(applied)
                self.metrics.labels_applied.labels("rejected").inc(rejected)

        if s.card_idle_days > 0:
            @app.timer(interval=CARD_EXPIRY_INTERVAL_S)
            async def expire_idle_cards() -> None:
                if not self.ready or self.restore.status().restoring:
                    return
                mine = [tp.partition for tp in app.assignor.assigned_actives()
                        if tp.topic == s.topic_transactions]
                try:
                    removed = await self.expiry.sweep(mine, self.processor.newest_event_s)
                except Exception as exc:  # housekeeping: the next round tries again
                    logger.warning("card expiry postponed error=%r", exc)
                    return
                self.metrics.cards_expired.inc(removed)

        async def settle_recovery() -> None:
            # A recovery target can turn out to be aborted data by the time it is read:
            # once the consumer is past it and nothing arrived twice in a row, it is
            # reached (what Faust does only in its own exactly-once mode).
            seen: dict[Any, tuple[int, int, int]] = {}
            while not app.should_stop:
                await asyncio.sleep(RECOVERY_SETTLE_S)
                try:
                    stuck = recovery_stuck_past_targets(app)
                except Exception as exc:  # a look at internals; the next round tries again
                    logger.debug("recovery check failed error=%r", exc)
                    continue
                for tp, (reached, target, position) in stuck.items():
                    if seen.get(tp) == (reached, target, position):
                        logger.warning(
                            "recovery past its target topic=%s partition=%d reached=%d "
                            "target=%d position=%d: counted as done", tp.topic,
                            tp.partition, reached, target, position)
                        end_recovery_at(app, tp, target)
                seen = stuck

        @app.timer(interval=s.monitoring_interval_s)
        async def consumer_lag() -> None:
            await self.lag.update(tp for tp in app.assignor.assigned_actives()
                            if tp.topic == s.topic_transactions)
            store = self.card_table.data
            if isinstance(store, CardRocksStore):
                for kind, size in store.memory_bytes().items():
                    self.metrics.card_store_memory.labels(kind).set(size)

        @app.page("/metrics")
        async def metrics_view(web: Any, request: Any) -> Any:
            return web.bytes(generate_latest(self.metrics.registry),
                             content_type=CONTENT_TYPE_LATEST.split(";")[0])

        @app.page("/health")
        async def health_view(web: Any, request: Any) -> Any:
            # "stopping" from the SIGTERM on: the supervisor then waits for the drain instead
            # of taking the stop (and the web server going away first) for a hang.
            # (Not should_stop: it is also true of a crashed app, which is not draining.)
            status = "stopping" if app.state in ("stopping", "shutdown") else "ok"
            return web.json({"status": status, "worker": self.name, "time": time.time()})

        @app.page("/ready")
        async def ready_view(web: Any, request: Any) -> Any:
            partitions = sorted(tp.partition for tp in app.assignor.assigned_actives()
                                if tp.topic == s.topic_transactions)
            shadow = self.processor.shadow
            restore = self.restore.status()
            # Not ready while restoring tables, also after a later rebalance: the supervisor
            # reads the restore progress and keeps a worker that restores.
            ready = self.ready and not restore.restoring
            body = {"ready": ready, "model_version": self.processor.scorer.version,
                    "shadow_version": shadow.version if shadow is not None else None,
                    "assigned_partitions": len(partitions), "partitions": partitions,
                    "worker": self.name, "pid": os.getpid(), **restore.to_json()}
            return web.json(body, status=200 if ready else 503)

        async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
            # Before any await: the recovery this assignment started seeks afterwards.
            after_each_seek(app.consumer, self._from_the_first_where_past_the_end)
            mine = [tp for tp in assigned if tp.topic == s.topic_transactions]
            owned = {tp.partition for tp in mine}
            self.metrics.assigned_partitions.set(len(mine))
            # Exactly once needs no takeover scan: a predecessor's outputs committed with its
            # offsets.
            self.scoring.verify_takeover(owned)
            if self.exactly_once:
                if self._settling is None:
                    self._settling = asyncio.ensure_future(settle_recovery())
                commit_outside_faust(app.consumer, s.topic_transactions, s.topic_labels,
                                     self.merchant_labels.get_topic_name())
                # A fresh epoch for every owned partition: this fences whoever held one
                # before (and aborts its open transaction) before anything is read.
                await asyncio.gather(self._reopen_scoring(mine),
                                     self._reopen_labels(assigned))
            self.scoring.forget_done()
            if not self.exactly_once:  # under exactly once, reset with the fence
                self.scoring.continuity.reset()
            self.starts.forget_log_starts()
            gone = set(self.processor.newest_event_s) - owned
            for partition in gone:
                del self.processor.newest_event_s[partition]
            self.expiry.forget(gone)
            logger.info("assigned worker=%s partitions=%s", self.name,
                        sorted(tp.partition for tp in mine))

        async def close_outputs(sender: Any, **kwargs: Any) -> None:
            await self.close_clients()

        async def on_rebalanced(sender: Any, **kwargs: Any) -> None:
            self.ready = True
            self.metrics.worker_up.set(1)

        @app.task
        async def warm_takeover_reader() -> None:
            # Connected before the first batch: a takeover then costs the reads, not a
            # client bootstrap (measured ~3 s of a standby's takeover before this), nor a
            # metadata wait (workers.takeover).
            try:
                await self._takeover.start()
                if self.exactly_once:
                    await self._stable_offsets.start()
                    await self._label_reader.start()
                    await self._changelog_reader.start()
            except KafkaError as exc:
                logger.warning("takeover reader not started yet error=%r", exc)

        if self.swapper is not None:
            swapper = self.swapper

            @app.task
            async def follow_model_updates() -> None:
                await swapper.run()

        # Signal receivers are typed narrowly by mode; these match what it calls at run time.
        app.on_partitions_assigned.connect(cast(Any, on_assigned))
        app.on_rebalance_complete.connect(cast(Any, on_rebalanced))
        app.on_before_shutdown.connect(cast(Any, close_outputs))


    async def close_clients(self) -> None:
        """At shutdown, before Faust stops its own clients: each path's transactional producer
        and the reader it uses, under the path's lock (no batch is between writing and
        committing, nor in a read), then the stable-offsets client."""
        async with self.state_lock:
            await self.outputs.close()
            await self._takeover.stop()
        async with self.label_lock:
            await self.label_outputs.close()
            await self._label_reader.stop()
        async with self.applier.lock:
            await self.applier.outputs.close()
            await self._changelog_reader.stop()
        await self._stable_offsets.stop()

    async def _reopen_scoring(self, mine: list[Any]) -> None:
        async with self.state_lock:
            await self.outputs.close()
            await self.outputs.open(tp.partition for tp in mine)
            self.scoring.continuity.reset()
            await self._read_starts(self.settings.topic_transactions,
                                    [tp.partition for tp in mine])

    async def _read_starts(self, topic: str, partitions: list[int]) -> None:
        """Where this ownership of ``topic``'s ``partitions`` starts: the group's committed
        offsets, read once the fence has settled the predecessor's last transaction. (Faust
        reads them at the rebalance, before the fence: a transaction of the predecessor still
        being completed then is missing from that read, and its records would be done twice.)
        """
        try:
            starts = await self._stable_offsets.read({topic: partitions})
            starts = await self._from_the_first_past_the_end(topic, starts)
        except KafkaError as exc:
            logger.critical("cannot read where the assigned partitions start, exiting "
                            "topic=%s error=%r", topic, exc)
            os._exit(EXIT_KAFKA_UNAVAILABLE)
        self.starts.settle(topic, starts)

    async def _from_the_first_past_the_end(self, topic: str,
                                           starts: dict[tuple[str, int], int | None]
                                           ) -> dict[tuple[str, int], int | None]:
        """``starts``, where a committed offset past its partition's end is replaced by the
        partition's first offset, and Faust's consumer is moved there (its position, and the
        committed offset it commits from and reads lag from).

        A committed offset is never past the end of a healthy partition: the topic was deleted
        and created again while the group kept its offsets (seen on 2026-12-03), or the log was
        truncated. Faust seeks to the committed offset and silently drops every record below
        it, so the partition would score nothing until its new records reached the old offset.
        Kafka's own consumers start over (``auto.offset.reset``); so does this worker, loudly
        (once per partition and stale offset). After an unclean leader election (off by
        default) truncated a partition below the committed offset, this redoes the partition
        from its start: a second output for each record it holds (the decision a card still
        keeps, or a new score).
        """
        from faust.types import TP

        known = [p for (_t, p), committed in starts.items() if committed is not None]
        if not known:
            return starts
        # The label path's topics are read by the label path's reader.
        reader = (self._takeover if topic == self.settings.topic_transactions
                  else self._label_reader)
        ends = await reader.log_ends(topic, known)
        fixed = dict(starts)
        for (name, partition), committed in starts.items():
            if committed is None or committed <= ends[partition]:
                continue
            first = await reader.log_start(name, partition)
            if (name, partition, committed) not in self._past_end_seen:
                self._past_end_seen.add((name, partition, committed))
                logger.error("committed offset past the end topic=%s partition=%d "
                             "committed=%d: the topic was created again or truncated; "
                             "starting from its first record, offset %d", name, partition,
                             committed, first)
                self.metrics.offsets_past_end.inc()
            tp = TP(name, partition)
            await self.app.consumer.seek(tp, first)
            reset_committed(self.app.consumer, tp, first)
            fixed[(name, partition)] = first
        return fixed

    async def _from_the_first_where_past_the_end(self) -> None:
        """After Faust's consumer sought its partitions to the group's committed offsets:
        ``_from_the_first_past_the_end`` for the partitions it holds of the topics it reads:
        the transactions, the labels and the merchant labels (the label path's second hop,
        whose starts only Faust reads, in both modes).

        Under at least once this is the only check (the worker reads no starts of its own);
        under exactly once it also covers a seek that comes after ``_read_starts`` (Faust
        seeks at the end of each recovery, and when a fetch finds the flow stopped)."""
        consumer = self.app.consumer
        topics = (self.settings.topic_transactions, self.settings.topic_labels,
                  self.merchant_labels.get_topic_name())
        try:
            for topic in topics:
                await self._from_the_first_past_the_end(topic, {
                    (tp.topic, tp.partition): committed_offset(consumer, tp)
                    for tp in consumer.assignment() if tp.topic == topic})
        except KafkaError as exc:
            logger.critical("cannot read where the assigned partitions start, exiting "
                            "error=%r", exc)
            os._exit(EXIT_KAFKA_UNAVAILABLE)

    async def _reopen_labels(self, assigned: Any) -> None:
        """Fence the label path's partitions now assigned here; hop 2 then catches up with
        the merchants changelog before it applies anything (workers.merchant_labels)."""
        labels = [tp.partition for tp in assigned if tp.topic == self.settings.topic_labels]
        merchant = [tp.partition for tp in assigned
                    if tp.topic == self.merchant_labels.get_topic_name()]

        async def hop1() -> None:
            async with self.label_lock:
                await self.label_outputs.close()
                await self.label_outputs.open(labels)
                self.label_continuity.reset()
                await self._read_starts(self.settings.topic_labels, labels)

        async def hop2() -> None:
            async with self.applier.lock:
                await self.applier.outputs.close()
                await self.applier.outputs.open(merchant)
                self.applier.reset()

        await asyncio.gather(hop1(), hop2())

    def _register_chaos(self) -> None:
        """Fault hooks, loopback only.

        POST /chaos/model {"delay_s", "fail"}: slow down or break the current model.
        POST /chaos/features {"nan": [name, ...]}: compute those features as NaN (a feature
        bug), until a POST with an empty list.
        POST /chaos/delivery {"withhold", "repeat"}: hide the next records from the worker as
        if the consumer had skipped them, or hand the last ones over again.
        """
        chaos, delivery = self.chaos, self.delivery_chaos

        def set_delivery(body: dict[str, Any]) -> dict[str, Any]:
            withhold, repeat = int(body.get("withhold", 0)), int(body.get("repeat", 0))
            delivery.withhold, delivery.repeat = max(withhold, 0), max(repeat, 0)
            return {"withhold": delivery.withhold, "repeat": delivery.repeat}

        def set_model(body: dict[str, Any]) -> dict[str, Any]:
            delay, fail = float(body.get("delay_s", 0.0)), bool(body.get("fail", False))
            chaos.delay_s, chaos.fail = max(delay, 0.0), fail
            return {"delay_s": chaos.delay_s, "fail": chaos.fail}

        def set_features(body: dict[str, Any]) -> dict[str, Any]:
            names = list(body.get("nan", []))
            unknown = [n for n in names if n not in FEATURE_NAMES]
            if unknown:
                raise ValueError(f"unknown features {unknown}")
            chaos.nan_columns = tuple(FEATURE_NAMES.index(n) for n in names)
            return {"nan": names}

        self._chaos_hook("/chaos/delivery", '{"withhold": int, "repeat": int}', set_delivery)
        self._chaos_hook("/chaos/features", '{"nan": [feature name, ...]}', set_features)
        self._chaos_hook("/chaos/model", '{"delay_s": float, "fail": bool}', set_model)

    def _chaos_hook(self, path: str, usage: str,
                    apply: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """A loopback-only POST ``path`` whose JSON body ``apply`` turns into the new state."""
        from faust.web import View

        from fraudstream.loopback import is_loopback

        class ChaosHook(View):
            async def post(self, request: Any) -> Any:
                if not is_loopback(getattr(request, "remote", None)):
                    return self.json({"error": "loopback only"}, status=403)
                try:
                    state = apply(await request.json())
                except (ValueError, TypeError, AttributeError) as exc:
                    return self.json({"error": f"send {usage} ({exc})"}, status=400)
                logger.warning("chaos: %s %s", path, state)
                return self.json(state)

        self.app.page(path, name=f"chaos{path.replace('/', '-')}")(ChaosHook)


class _LazyProducer:
    """The aiokafka producer inside Faust's, looked up on use (it exists once the app runs)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(aiokafka_producer(self.app.producer), name)


async def _finish(step: Any) -> None:
    """Run a batch's step to its end even when the agent is cancelled meanwhile: the batch
    reader acknowledges the batch when the agent's body returns or is cancelled."""
    task = asyncio.ensure_future(step)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise
