"""``fraudstream produce --envelopes``: what each envelope line sends."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from fraudstream.commands.produce_cmd import Envelope, envelope_records
from fraudstream.errors import UserError

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def records(tmp_path: Path, *lines: object) -> list[Envelope]:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    return list(envelope_records(source, NOW))


def test_values_keys_and_placeholders(tmp_path: Path) -> None:
    first, raw, none, *copies = records(
        tmp_path,
        {"value": {"card_id": "C1", "t": "{now-60s}", "x": 1}, "pad": ["note", 3]},
        {"value_b64": base64.b64encode(b"\xff\x00").decode(), "key": "k", "key_times": 3},
        {"key_null": True, "wrong_partition": True},
        {"value_text": "{\"id\": \"t-{i}\"", "repeat": 2, "key_b64": "AAE="})
    assert first == Envelope(1, 0, b"C1", b'{"card_id":"C1","t":"2027-01-15T07:59:00Z","x":1,'
                             b'"note":"xxx"}')
    assert raw == Envelope(2, 0, b"kkk", b"\xff\x00")
    assert none == Envelope(3, 0, None, None, wrong_partition=True)
    assert copies == [Envelope(4, 0, b"\x00\x01", b'{"id": "t-0"'),
                      Envelope(4, 1, b"\x00\x01", b'{"id": "t-1"')]


def test_a_line_that_is_not_an_envelope_names_its_place(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"value": 1}\n[1]\n')
    with pytest.raises(UserError, match=r"in\.jsonl:2"):
        list(envelope_records(source, NOW))
