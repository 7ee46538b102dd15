"""Every use of a private Faust or aiokafka attribute by the worker, and a check of them.

Faust offers no public way to make its producer idempotent outside its exactly-once mode, to
read the group's committed offsets, to reach the aiokafka producer inside its own, or to write
a table partition other than the current event's. The worker needs all four. They live here,
and ``check_internals`` runs when a worker starts: an upgrade of faust-streaming or aiokafka
that renames one of them stops the worker at once with a message naming it, instead of
failing in the middle of a batch. (``workers.card_store`` subclasses Faust's stores; the
attributes it relies on are checked here too.)
"""

from __future__ import annotations

from typing import Any, cast


class FaustInternalsChanged(RuntimeError):
    """An installed faust-streaming or aiokafka lacks an attribute the worker relies on."""


#: (module, class, attribute) that must exist, and what the worker uses it for.
REQUIRED: tuple[tuple[str, str, str, str], ...] = (
    ("faust.transport.drivers.aiokafka", "Producer", "_settings_extra",
     "idempotent producer settings"),
    ("faust.transport.drivers.aiokafka", "Producer", "_ensure_producer",
     "the aiokafka producer behind Faust's (batch sends)"),
    ("faust.transport.consumer", "Consumer", "_committed_offset",
     "the group's committed offsets (offset continuity, lag)"),
    ("faust.stores.rocksdb", "Store", "_db_for_partition", "card table writes by partition"),
    ("faust.stores.rocksdb", "Store", "offset_key", "the card table's changelog offset"),
    ("faust.stores.rocksdb", "Store", "partition_path", "rebuilding a foreign partition"),
    ("faust.stores.memory", "Store", "_key_partition", "card table writes by partition"),
    ("aiokafka.producer.producer", "AIOKafkaProducer", "create_batch", "batch sends"),
    ("aiokafka.producer.producer", "AIOKafkaProducer", "send_batch", "batch sends"),
)


def missing_internals() -> list[str]:
    """Each required attribute the installed libraries lack, as ``module.Class.attr (use)``."""
    import importlib

    missing = []
    for module_name, class_name, attribute, use in REQUIRED:
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{class_name} ({use})")
            continue
        if not _has(cls, attribute):
            missing.append(f"{module_name}.{class_name}.{attribute} ({use})")
    return missing


def _has(cls: type, attribute: str) -> bool:
    """Class attributes, or instance attributes assigned in ``__init__``/``__post_init__``."""
    if hasattr(cls, attribute):
        return True
    import inspect

    for klass in cls.__mro__:
        for method in ("__init__", "__post_init__"):
            func = klass.__dict__.get(method)
            if func is None:
                continue
            try:
                source = inspect.getsource(func)
            except (OSError, TypeError):
                continue
            if f"self.{attribute}" in source:
                return True
    return False


def check_internals() -> None:
    """Raise ``FaustInternalsChanged`` naming every missing attribute and the versions."""
    missing = missing_internals()
    if missing:
        from importlib.metadata import version

        raise FaustInternalsChanged(
            f"faust-streaming {version('faust-streaming')} / aiokafka {version('aiokafka')} "
            f"lack what the worker relies on: {'; '.join(missing)}. Install the versions "
            "pyproject.toml allows (pip install -e .), or update workers/faust_bridge.py")


def use_idempotent_producer() -> None:
    """Make Faust's aiokafka producer idempotent (acks=all, sequence numbers per partition).

    Faust turns idempotence on only in its exactly-once mode, which this worker does not use
    (see workers/takeover.py). Without it, a produce retried after a broker failure can be
    written twice: measured, 11 duplicate outputs when one of three brokers was SIGKILLed.
    """
    from faust.transport.drivers import aiokafka as faust_aiokafka

    def settings_extra(self: Any) -> dict[str, Any]:
        return {"acks": "all", "enable_idempotence": True}

    cast(Any, faust_aiokafka.Producer)._settings_extra = settings_extra


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The group's committed offset (next to read) of ``tp`` as Faust's consumer knows it."""
    return cast(int | None, consumer._committed_offset.get(tp))


def aiokafka_producer(faust_producer: Any) -> Any:
    """The aiokafka producer inside Faust's producer (it exists once the app runs)."""
    return faust_producer._ensure_producer()
