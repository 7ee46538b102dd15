"""The hostile-input list (tests/data/hostile_records.jsonl) through the scoring step.

Each line of the list is one kind of bad (or tricky but valid) record with the outcome it must
have: ``scored`` or a dead-letter error code. The same file is replayed into supervised workers
by tests/integration/test_hostile_inputs.py with ``fraudstream produce --envelopes``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import orjson

from fraudstream.commands.produce_cmd import Envelope, envelope_records
from fraudstream.workers.output import key_partition
from fraudstream.workers.processor import RawRecord
from tests.unit.workers.test_processor import Harness

HOSTILE = Path(__file__).parents[2] / "data" / "hostile_records.jsonl"
PARTITIONS = 4
LIMIT = 65536
SECRETS = (b"4111111111111111", b"5500005555555559")


def expectations() -> dict[int, tuple[str, str]]:
    """Line number -> (case, expected outcome)."""
    found = {}
    for number, line in enumerate(HOSTILE.read_bytes().splitlines(), start=1):
        spec = orjson.loads(line)
        found[number] = (spec["case"], spec["expect"])
    return found


def partition_of(env: Envelope) -> int:
    """Where Kafka's default partitioner (what ``produce`` uses) puts the record."""
    right = key_partition(env.key, PARTITIONS) if env.key is not None else 0
    return (right + 1) % PARTITIONS if env.wrong_partition else right


def test_the_list_has_at_least_fifty_kinds_each_with_an_outcome() -> None:
    cases = expectations()
    assert len({case for case, _e in cases.values()}) == len(cases) >= 50
    assert {e for _c, e in cases.values()} >= {
        "scored", "invalid_json", "not_an_object", "missing_field", "bad_field_type",
        "bad_identifier", "bad_amount", "bad_timestamp", "bad_key", "wrong_partition",
        "oversized", "empty_record", "duplicate_transaction"}


def test_every_hostile_record_ends_where_the_list_says() -> None:
    now = time.time()
    h = Harness()
    h.processor.clock = lambda: now
    h.processor.max_bytes = LIMIT
    h.processor.partitions = PARTITIONS
    envelopes = list(envelope_records(HOSTILE, now))
    where: dict[tuple[int, int], Envelope] = {}
    offsets = [0] * PARTITIONS
    batch: list[RawRecord] = []
    for env in envelopes:
        partition = partition_of(env)
        offsets[partition] += 1
        where[(partition, offsets[partition])] = env
        batch.append(RawRecord("transactions", partition, offsets[partition], env.key,
                               env.value, int(now * 1000)))
    started = time.perf_counter()
    for i in range(0, len(batch), 500):
        asyncio.run(h.processor.process(batch[i:i + 500]))
    elapsed = time.perf_counter() - started

    cases = expectations()
    outcome: dict[tuple[int, int], str] = {}
    for topic, key, value, sent_to in h.sink.records:
        assert len(value) + len(key or b"") <= LIMIT, "an output larger than its topic accepts"
        body = orjson.loads(value)
        payload = base64.b64decode(body.get("payload_b64", ""))
        assert not any(s in value or s in payload for s in SECRETS), "a card number was written"
        assert sent_to == body["partition"]
        position = (body["partition"], body["offset"])
        assert position not in outcome, f"two outputs for {cases[where[position].line]}"
        outcome[position] = "scored" if topic == "scores" else body["error"]
    wrong = {cases[env.line][0]: outcome.get(position)
             for position, env in where.items() if outcome.get(position) != cases[env.line][1]}
    assert not wrong, f"unexpected outcomes: {wrong}"
    assert len(outcome) == len(envelopes) > 20_000
    # The hot card is 20,000 of these: it must cost what the others cost.
    assert elapsed < 30, f"{len(envelopes)} records took {elapsed:.1f} s"
