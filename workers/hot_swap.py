"""Hot swap: follow the compacted ``model-updates`` topic, load and verify new versions in the
background, and hand them to the scoring step, which switches between two batches.

Every worker reads the whole topic itself (a plain consumer, no group), so each one sees every
update. An update is a hint, not an order (anyone who can produce to the topic can write
one): the worker serves what the signed registry state names for the alias, with that
state's generation. A version that cannot be loaded and verified is refused and counted; the
current one keeps serving, and a refusal caused by a store that did not answer is retried.
Loading runs in a thread: scoring goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fraudstream.model_registry.errors import (
    ModelRefused,
    NotFound,
    RegistryError,
    StoreUnavailable,
)
from fraudstream.model_registry.registry import ALIASES, ModelRegistry
from fraudstream.model_registry.stores import store_labels
from fraudstream.model_registry.updates import ModelUpdate
from fraudstream.monitoring.live_performance import publish_validation
from fraudstream.monitoring.metrics import WorkerMetrics
from fraudstream.settings import Settings
from fraudstream.workers.processor import ScoringProcessor
from fraudstream.workers.scoring import Scorer

logger = logging.getLogger(__name__)

RETRY_S = 5.0
STORE_CHECK_S = 15.0


@dataclass
class SwapStatus:
    """What the swapper did last (for /ready and logs)."""

    swaps: int = 0
    refused: dict[str, str] = field(default_factory=dict)
    last_load_s: float = 0.0


def announce_model(metrics: WorkerMetrics, scorer: Scorer, replaced: Scorer | None = None
                   ) -> None:
    """Export the model a worker serves from now on: its info gauge (the ``replaced`` one's
    removed) and its validation figures (kept for every version served, see
    ``publish_validation``)."""
    if replaced is not None:
        with contextlib.suppress(KeyError):
            metrics.model_info.remove(replaced.version, replaced.model.manifest.family)
    metrics.model_info.labels(scorer.version, scorer.model.manifest.family).set(1)
    publish_validation(metrics, scorer.version, scorer.model.manifest.metrics)


class ModelSwapper:
    """Applies model updates to a ``ScoringProcessor``; ``run()`` until cancelled."""

    def __init__(self, *, bootstrap: Settings | str, topic: str, registry: ModelRegistry,
                 processor: ScoringProcessor, metrics: WorkerMetrics,
                 expected_features: Sequence[str], start_generation: int = 0) -> None:
        #: The settings (they carry every connection option), or a bootstrap string.
        self.bootstrap = bootstrap
        self.topic = topic
        self.registry = registry
        self.processor = processor
        self.metrics = metrics
        self.expected_features = list(expected_features)
        self.status = SwapStatus()
        self._labels = store_labels(registry.stores)
        # (alias, version, signed generation) already refused for a non-retriable reason.
        self._refused: set[tuple[str, str, int]] = set()
        self._pending: dict[str, ModelUpdate] = {}
        # The signed registry generation each alias' model came from (never an update's
        # own claim): an older state (a stale store) never replaces a newer model.
        self._generation = {"production": start_generation, "shadow": 0}
        self._retry_at = 0.0

    def current(self, alias: str) -> str | None:
        if alias == "production":
            return self.processor.scorer.version
        shadow = self.processor.shadow
        return shadow.version if shadow is not None else None

    async def run(self) -> None:
        """Follow the topic forever, reconnecting after errors; apply what arrives."""
        from aiokafka import TopicPartition

        from fraudstream import kafka_clients

        checker = asyncio.create_task(self._check_stores())
        await self.load_previous()
        try:
            while True:
                consumer = kafka_clients.aio_consumer(self.bootstrap, group_id=None,
                                                      enable_auto_commit=False,
                                                      client_id="fraudstream-model-updates")
                try:
                    await consumer.start()
                    ids = consumer.partitions_for_topic(self.topic)
                    if not ids:
                        await consumer._client.force_metadata_update()
                        ids = consumer.partitions_for_topic(self.topic) or {0}
                    partitions = [TopicPartition(self.topic, i) for i in sorted(ids)]
                    consumer.assign(partitions)
                    await consumer.seek_to_beginning(*partitions)
                    logger.info("following model updates topic=%s", self.topic)
                    while True:
                        batches = await consumer.getmany(timeout_ms=500)
                        for messages in batches.values():
                            for m in messages:
                                update = ModelUpdate.from_bytes(m.value)
                                if update is None:
                                    logger.warning("malformed model update offset=%s", m.offset)
                                    continue
                                self._pending[update.alias] = update
                        await self._apply_pending()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("model updates consumer failed, retrying error=%r", exc)
                    await asyncio.sleep(RETRY_S)
                finally:
                    with contextlib.suppress(Exception):
                        await consumer.stop()
        finally:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker

    async def load_previous(self) -> None:
        """Load the version production had before the current one, as the first fallback.

        Without it a failing model falls back to the rules until the first swap.
        """
        if self.processor.previous is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            history = await loop.run_in_executor(None, self.registry.history, "production")
            current = self.processor.scorer.version
            earlier = [v for v in history if v != current]
            if not earlier or (history and history[-1] != current):
                return
            loaded = await loop.run_in_executor(None, self.registry.load, earlier[-1],
                                                self.expected_features)
            # Off the event loop: a scorer checks its flat trees against the model.
            fallback = await loop.run_in_executor(None, Scorer, loaded.model)
        except Exception as exc:
            logger.info("no previous version loaded as fallback error=%s", exc)
            return
        if self.processor.previous is None:
            self.processor.previous = fallback
            logger.info("fallback model loaded version=%s", loaded.model.version)

    async def _apply_pending(self) -> None:
        if not self._pending or time.monotonic() < self._retry_at:
            return
        for alias, update in list(self._pending.items()):
            retry = await self.apply(update)
            if retry:
                self._retry_at = time.monotonic() + RETRY_S
            else:
                self._pending.pop(alias, None)

    async def apply(self, update: ModelUpdate) -> bool:
        """Bring ``update``'s alias to what the signed registry state names; True to retry.

        The topic is open to anyone who can produce to it, so an update is only a hint that
        the alias changed: the version loaded, and the generation it counts as, come from the
        signed registry state. An update naming another version than that state is ignored,
        unless a store did not answer (then the state may be stale: it is retried).
        """
        if update.alias not in ALIASES:
            logger.warning("model update for unknown alias=%s ignored", update.alias)
            return False
        loop = asyncio.get_running_loop()
        try:
            states = await loop.run_in_executor(None, self.registry.read_states)
            state = self.registry.reconcile(states)
        except RegistryError as exc:
            reason = exc.reason if isinstance(exc, ModelRefused) else "store_unavailable"
            self._refuse(update.alias, update.version, reason, str(exc))
            return True
        complete = all(s.up for s in states)
        version = state.aliases.get(update.alias)
        if version != update.version:
            if not complete:
                return True  # a store that did not answer may hold the newer state
            logger.warning("model update not confirmed by the signed registry state, ignored "
                           "alias=%s version=%s signed_version=%s generation=%d", update.alias,
                           update.version, version, state.generation)
        if version is None or state.generation < self._generation[update.alias]:
            return False
        if version == self.current(update.alias):
            self._generation[update.alias] = state.generation
            return False
        memo = (update.alias, version, state.generation)
        if memo in self._refused:
            return False
        return await self._load_and_swap(update.alias, version, state.generation, memo)

    async def _load_and_swap(self, alias: str, version: str, generation: int,
                             memo: tuple[str, str, int]) -> bool:
        """Load and verify ``version`` and serve it as ``alias``; True if worth retrying."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            loaded = await loop.run_in_executor(None, self.registry.load, version,
                                                self.expected_features)
            scorer = await loop.run_in_executor(None, Scorer, loaded.model)
        except StoreUnavailable as exc:
            self._refuse(alias, version, "store_unavailable", str(exc))
            return True
        except NotFound as exc:
            # A stale store's state may not know the version yet: retry.
            self._refuse(alias, version, "store_unavailable", str(exc))
            return True
        except ModelRefused as exc:
            self._refuse(alias, version, exc.reason, str(exc))
            if exc.retriable:  # a store was down: its copy may be the good one
                return True
            self._refused.add(memo)
            return False
        except Exception as exc:
            self._refuse(alias, version, "load_error", f"{type(exc).__name__}: {exc}")
            if getattr(exc, "retriable", False):
                return True
            self._refused.add(memo)
            return False
        seconds = time.perf_counter() - started
        self.status.last_load_s = seconds
        self._generation[alias] = generation
        if alias == "shadow":
            self.processor.set_shadow(scorer)
            logger.info("shadow model set version=%s load_s=%.3f", scorer.version, seconds)
            return False
        old = self.processor.scorer
        self.processor.swap_scorer(scorer)
        self.status.swaps += 1
        self.metrics.model_swaps.inc()
        announce_model(self.metrics, scorer, replaced=old)
        logger.info("model swapped version=%s previous=%s store=%s load_s=%.3f",
                    scorer.version, old.version, loaded.store_uri, seconds)
        return False

    def _refuse(self, alias: str, version: str, reason: str, message: str) -> None:
        self.metrics.model_refused.labels(reason).inc()
        self.status.refused[version] = f"{reason}: {message}"
        logger.error("model version refused, keeping version=%s alias=%s refused=%s "
                     "reason=%s error=%s", self.current(alias), alias, version, reason,
                     message)

    async def _check_stores(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for store, label in zip(self.registry.stores, self._labels, strict=True):
                try:
                    await loop.run_in_executor(None, store.ping)
                    up = 1
                except Exception:
                    up = 0
                self.metrics.registry_store_up.labels(label).set(up)
            await asyncio.sleep(STORE_CHECK_S)


@dataclass(frozen=True)
class InitialModel:
    """The model a worker starts with, where it came from, and the registry generation."""

    scorer: Scorer
    source: str
    generation: int = 0


def current_for_activation(loaded: InitialModel, generation: Callable[[], int],
                           reload: Callable[[], InitialModel]) -> InitialModel:
    """The model a standby should score with when it is given a slot.

    A standby loads its model when it starts, possibly minutes before a failover; a promotion
    or rollback since then would otherwise be ignored for the whole backlog it takes over
    (until its model-update follower caught up). When the registry's generation moved, the
    model is loaded again; when the registry cannot say, the loaded model is kept.
    """
    try:
        now = generation()
    except Exception as exc:  # the registry unreachable: the verified model in hand stands
        logger.warning("registry generation unknown at activation, keeping model=%s error=%r",
                       loaded.scorer.version, exc)
        return loaded
    if now == loaded.generation:
        return loaded
    fresh = reload()
    logger.info("registry moved since the standby started generation=%d->%d model=%s->%s",
                loaded.generation, now, loaded.scorer.version, fresh.scorer.version)
    return fresh


def initial_scorer(settings: Settings, registry: ModelRegistry,
                   metrics: WorkerMetrics) -> InitialModel:
    """The model to start with: the registry's ``production``, else the file; and its source.

    Raises ArtifactError when neither can be loaded.
    """
    from fraudstream.features import FEATURE_NAMES
    from fraudstream.model_registry.artifact import load_verified

    try:
        generation = registry.state().generation
        loaded = registry.load("production", FEATURE_NAMES)
        return InitialModel(Scorer(loaded.model), f"registry ({loaded.store_uri})", generation)
    except NotFound:
        logger.info("the registry has no production version; serving %s", settings.model_path)
    except (StoreUnavailable, ModelRefused) as exc:
        reason = exc.reason if isinstance(exc, ModelRefused) else "store_unavailable"
        metrics.model_refused.labels(reason).inc()
        logger.error("registry production model unusable, serving the file instead path=%s "
                     "error=%s", settings.model_path, exc)
    model = load_verified(settings.model_path, settings.signing_key.encode())
    return InitialModel(Scorer(model), str(settings.model_path))
