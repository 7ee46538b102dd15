"""Dataset container, the transaction record contract, and CSV writing / reading."""

from __future__ import annotations

import csv
import gc
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path

import numpy as np

from fraudstream.simulator.csv_cells import escape_row, unescape_cell

COLUMNS = (
    "transaction_id",
    "timestamp",
    "card_id",
    "merchant_id",
    "amount",
    "is_fraud",
    "fraud_scenario",
)
REQUIRED_COLUMNS = COLUMNS[:-1]  # fraud_scenario is optional on input

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_RECORD_CHUNK = 8192
_WRITE_CHUNK = 100_000
_PARSE_CHUNK = 200_000

# Layout of the canonical "YYYY-MM-DDTHH:MM:SSZ" form, used by the vectorised parser.
_DIGIT_POS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
_SEPARATORS = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: "Z"}


class CsvFormatError(ValueError):
    """A transactions CSV file is missing or malformed; the message names file, line and column."""


class _RowError(Exception):
    """Internal: a bad value in data row `index` (0-based, header excluded)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


@dataclass(frozen=True)
class Dataset:
    """Column arrays of equal length describing transactions sorted by timestamp."""

    transaction_id: np.ndarray  # str objects
    timestamp_s: np.ndarray  # int64 unix seconds, UTC
    card_id: np.ndarray  # str objects
    merchant_id: np.ndarray  # str objects
    amount: np.ndarray  # float64
    is_fraud: np.ndarray  # int8 0/1
    fraud_scenario: np.ndarray  # int8 0..3

    def __post_init__(self) -> None:
        lengths = {f.name: len(getattr(self, f.name)) for f in fields(self)}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"Dataset columns differ in length: {lengths}")

    def __len__(self) -> int:
        return len(self.timestamp_s)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dataset):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
        )

    def take(self, index: np.ndarray | slice) -> Dataset:
        """Rows selected by an index array, boolean mask or slice."""
        return Dataset(*(getattr(self, f.name)[index] for f in fields(self)))


def parse_timestamp(text: str) -> int:
    """Parse an RFC 3339 timestamp with an explicit offset ("Z", "+00:00", ...) to unix seconds."""
    stripped = text.strip()
    if not _RFC3339.fullmatch(stripped):
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    try:
        moment = datetime.fromisoformat(stripped.upper())
    except ValueError as exc:
        raise ValueError(f"invalid RFC 3339 timestamp {text!r}: {exc}") from None
    return (moment - _EPOCH) // timedelta(seconds=1)


def format_timestamps(seconds: np.ndarray) -> np.ndarray:
    """Vectorised unix seconds -> "YYYY-MM-DDTHH:MM:SSZ" strings (numpy str array)."""
    stamps = np.asarray(seconds, dtype=np.int64).astype("datetime64[s]")
    return np.datetime_as_string(stamps, unit="s", timezone="UTC")


def format_timestamp(seconds: int) -> str:
    """Format unix seconds as an RFC 3339 UTC timestamp "YYYY-MM-DDTHH:MM:SSZ"."""
    return str(format_timestamps(np.array([seconds]))[0])


def to_records(ds: Dataset, start: int = 0, stop: int | None = None) -> Iterator[dict[str, object]]:
    """Yield one record-contract dict per transaction in ds[start:stop]."""
    lo, hi, _ = slice(start, stop).indices(len(ds))
    for chunk_lo in range(lo, hi, _RECORD_CHUNK):
        part = slice(chunk_lo, min(chunk_lo + _RECORD_CHUNK, hi))
        yield from (
            {
                "transaction_id": tx_id,
                "timestamp": stamp,
                "card_id": card,
                "merchant_id": merchant,
                "amount": amount,
                "is_fraud": fraud,
                "fraud_scenario": scenario,
            }
            for tx_id, stamp, card, merchant, amount, fraud, scenario in _row_tuples(ds, part)
        )


def _row_tuples(ds: Dataset, part: slice) -> Iterator[tuple[object, ...]]:
    """Rows of ds[part] as tuples of plain Python values in COLUMNS order."""
    return zip(
        ds.transaction_id[part].tolist(),
        format_timestamps(ds.timestamp_s[part]).tolist(),
        ds.card_id[part].tolist(),
        ds.merchant_id[part].tolist(),
        ds.amount[part].astype(np.float64).tolist(),
        ds.is_fraud[part].astype(np.int64).tolist(),
        ds.fraud_scenario[part].astype(np.int64).tolist(),
        strict=True,
    )


def write_csv(ds: Dataset, path: Path | str) -> None:
    """Write ds as CSV (header COLUMNS, RFC 3339 UTC timestamps), atomically via a temp file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for lo in range(0, len(ds), _WRITE_CHUNK):
            writer.writerows(map(escape_row, _row_tuples(ds, slice(lo, lo + _WRITE_CHUNK))))
    os.replace(tmp, path)


def read_csv(path: Path | str) -> Dataset:
    """Read a transactions CSV written by write_csv (fraud_scenario optional), sorted by time."""
    path = Path(path)
    header, rows = _read_rows(path)
    where = {}
    for position, raw in enumerate(header):
        name = raw.strip()
        if name in where:
            raise CsvFormatError(f"{path}:1: duplicate column {name!r}")
        where[name] = position
    for name in REQUIRED_COLUMNS:
        if name not in where:
            raise CsvFormatError(f"{path}:1: missing required column {name!r} (header: {header})")
    widths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    bad_width = np.flatnonzero(widths != len(header))
    if bad_width.size:
        index = int(bad_width[0])
        raise CsvFormatError(
            f"{path}:{_line_of(path, index)}: expected {len(header)} fields, got {widths[index]}"
        )

    def column(name: str) -> list[str]:
        return list(map(itemgetter(where[name]), rows))

    parsers = {
        "timestamp": _parse_timestamps,
        "amount": _parse_amounts,
        "is_fraud": lambda values: _parse_codes(values, 1, "is_fraud must be 0 or 1"),
        "fraud_scenario": lambda values: _parse_codes(values, 3, "fraud_scenario must be 0..3"),
    }
    parsed: dict[str, np.ndarray] = {}
    for name, parser in parsers.items():
        if name not in where:
            continue
        try:
            parsed[name] = parser(column(name))
        except _RowError as err:
            line = _line_of(path, err.index)
            raise CsvFormatError(f"{path}:{line}: column {name!r}: {err.message}") from None
    scenario = parsed.get("fraud_scenario", np.zeros(len(rows), dtype=np.int8))
    def text(name: str) -> np.ndarray:
        # write_csv escaped these against formula injection (simulator.csv_cells).
        return np.array([unescape_cell(v) for v in column(name)], dtype=object)

    ds = Dataset(
        transaction_id=text("transaction_id"),
        timestamp_s=parsed["timestamp"],
        card_id=text("card_id"),
        merchant_id=text("merchant_id"),
        amount=parsed["amount"],
        is_fraud=parsed["is_fraud"],
        fraud_scenario=scenario,
    )
    if np.all(ds.timestamp_s[1:] >= ds.timestamp_s[:-1]):
        return ds
    return ds.take(np.argsort(ds.timestamp_s, kind="stable"))


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and non-blank data rows of a CSV file, with I/O problems as CsvFormatError."""
    line = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            line = reader.line_num
            if header is None:
                raise CsvFormatError(f"{path}:1: empty file, expected a header line")
            with _gc_paused():  # the collector would rescan millions of fresh row lists
                rows = [row for row in reader if row]
    except FileNotFoundError:
        raise CsvFormatError(f"{path}: file not found") from None
    except csv.Error as exc:
        raise CsvFormatError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise CsvFormatError(f"{path}: after line {line}: not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise CsvFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return header, rows


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Temporarily disable the cyclic garbage collector (restoring its previous state)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _line_of(path: Path, index: int) -> int:
    """Line number (1-based, last physical line) of data row `index`, by re-reading the file."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        seen = -1
        for row in reader:
            seen += bool(row)
            if seen == index:
                return reader.line_num
    return -1


def _parse_timestamps(values: list[str]) -> np.ndarray:
    """Unix seconds of RFC 3339 strings; canonical UTC form is parsed vectorised."""
    out = np.zeros(len(values), dtype=np.int64)
    done = np.zeros(len(values), dtype=bool)
    for lo in range(0, len(values), _PARSE_CHUNK):
        chunk = np.asarray(values[lo : lo + _PARSE_CHUNK], dtype=str)
        if chunk.dtype.itemsize < 20 * 4:  # every string shorter than the canonical form
            continue
        candidates = np.flatnonzero(np.strings.str_len(chunk) == 20)
        codes = chunk[candidates].astype("U20").view(np.uint32).reshape(-1, 20)
        seconds, ok = _parse_canonical(codes)
        out[lo + candidates[ok]] = seconds[ok]
        done[lo + candidates[ok]] = True
    for index in np.flatnonzero(~done).tolist():
        try:
            out[index] = parse_timestamp(values[index])
        except ValueError as exc:
            raise _RowError(index, str(exc)) from None
    return out


def _parse_canonical(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seconds and validity of "YYYY-MM-DDTHH:MM:SSZ" strings given as (n, 20) code points."""
    digits = codes.astype(np.int64) - ord("0")
    ok = ((digits[:, _DIGIT_POS] >= 0) & (digits[:, _DIGIT_POS] <= 9)).all(axis=1)
    for position, char in _SEPARATORS.items():
        ok &= codes[:, position] == ord(char)

    def number(first: int, width: int) -> np.ndarray:
        value = np.zeros(len(codes), dtype=np.int64)
        for position in range(first, first + width):
            value = value * 10 + digits[:, position]
        return np.where(ok, value, 1)

    year, month, day = number(0, 4), number(5, 2), number(8, 2)
    hour, minute, second = number(11, 2), number(14, 2), number(17, 2)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (hour < 24) & (minute < 60) & (second < 60)
    months = np.where(ok, (year - 1970) * 12 + month - 1, 0)
    first_day = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    next_first = (months + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    ok &= day <= next_first - first_day
    seconds = (first_day + day - 1) * 86400 + hour * 3600 + minute * 60 + second
    return seconds, ok


def _parse_amounts(values: list[str]) -> np.ndarray:
    """Finite, non-negative float64 amounts."""
    try:
        amounts = np.array(values, dtype=np.float64)
    except ValueError:
        parsed = []
        for index, value in enumerate(values):
            try:
                parsed.append(float(value))
            except ValueError:
                raise _RowError(index, f"non-numeric amount {value!r}") from None
        amounts = np.array(parsed, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(amounts) | (amounts < 0))
    if bad.size:
        index = int(bad[0])
        value = amounts[index]
        kind = "NaN" if np.isnan(value) else "negative" if value < 0 else "infinite"
        raise _RowError(index, f"{kind} amount {values[index]!r}")
    return amounts


def _parse_codes(values: list[str], maximum: int, problem: str) -> np.ndarray:
    """int8 codes from the strings "0".."maximum"."""
    text = np.strings.strip(np.asarray(values, dtype=str))
    codes = np.full(len(values), -1, dtype=np.int8)
    for code in range(maximum + 1):
        codes[text == str(code)] = code
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        index = int(bad[0])
        raise _RowError(index, f"{problem}, got {values[index]!r}")
    return codes
