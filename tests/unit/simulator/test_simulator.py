"""Unit tests for the Handbook transaction simulator (simulator/)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

# Imported from the submodules so these tests also run under a stale editable install;
# test_public_api_exports checks the package-level exports separately.
from fraudstream.simulator.profiles import (
    CustomerProfiles,
    TerminalProfiles,
    available_terminals,
    generate_customers,
    generate_terminals,
)
from fraudstream.simulator.records import (
    COLUMNS,
    CsvFormatError,
    Dataset,
    format_timestamp,
    parse_timestamp,
    read_csv,
    to_records,
    write_csv,
)
from fraudstream.simulator.scenarios import inject_frauds, scenario_2, scenario_3
from fraudstream.simulator.transactions import SimulationConfig, simulate

SMALL = SimulationConfig(n_customers=200, n_terminals=400, nb_days=30)
MID = SimulationConfig(n_customers=1000, n_terminals=2000, nb_days=60)
START = 1522540800  # 2018-04-01T00:00:00Z


@pytest.fixture(scope="module")
def small() -> Dataset:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def mid() -> Dataset:
    return simulate(MID)


def test_public_api_exports() -> None:
    from fraudstream import simulator

    assert simulator.__file__ is not None, (
        "'simulator' imported as a namespace package: the editable install predates "
        "simulator/__init__.py; re-run `pip install -e .`"
    )
    for name in ("SimulationConfig", "Dataset", "simulate", "to_records", "write_csv",
                 "read_csv", "parse_timestamp", "format_timestamp", "CsvFormatError"):
        assert hasattr(simulator, name), name


def test_default_config_matches_handbook() -> None:
    cfg = SimulationConfig()
    assert (cfg.n_customers, cfg.n_terminals, cfg.nb_days) == (5000, 10000, 183)
    assert (cfg.start_date, cfg.radius, cfg.seed, cfg.amount_scale) == ("2018-04-01", 5.0, 0, 1.0)
    assert cfg.id_prefix == "tx"


def test_same_seed_is_reproducible(small: Dataset) -> None:
    assert simulate(SMALL) == small


def test_different_seeds_differ(small: Dataset) -> None:
    other = simulate(SimulationConfig(n_customers=200, n_terminals=400, nb_days=30, seed=1))
    assert other != small
    assert len(other) != len(small) or not np.array_equal(other.amount, small.amount)


def test_columns_have_contract_dtypes(small: Dataset) -> None:
    assert small.timestamp_s.dtype == np.int64
    assert small.amount.dtype == np.float64
    assert small.is_fraud.dtype == np.int8
    assert small.fraud_scenario.dtype == np.int8
    for column in (small.transaction_id, small.card_id, small.merchant_id):
        assert column.dtype == object
        assert isinstance(column[0], str)
    assert len(small) == len(small.transaction_id) > 5000


def test_timestamps_sorted_and_within_days(small: Dataset) -> None:
    ts = small.timestamp_s
    assert np.all(np.diff(ts) >= 0)
    assert ts.min() >= START
    assert ts.max() < START + SMALL.nb_days * 86400
    assert np.all((ts - START) % 86400 > 0)  # time of day kept only if 0 < t < 86400


def test_amounts_non_negative_in_cents(small: Dataset) -> None:
    assert np.all(np.isfinite(small.amount))
    assert np.all(small.amount >= 0)
    cents = small.amount * 100
    assert np.allclose(cents, np.round(cents), atol=1e-6)


def test_ids_unique_and_formatted(small: Dataset) -> None:
    assert len(set(small.transaction_id.tolist())) == len(small)
    assert small.transaction_id[0] == "tx-000000000"
    assert small.transaction_id[-1] == f"tx-{len(small) - 1:09d}"
    assert all(re.fullmatch(r"C\d{5}", c) for c in set(small.card_id.tolist()))
    assert all(re.fullmatch(r"M\d{5}", m) for m in set(small.merchant_id.tolist()))
    cfg = SimulationConfig(n_customers=20, n_terminals=40, nb_days=3, id_prefix="run7")
    assert simulate(cfg).transaction_id[0] == "run7-000000000"


def test_scenario_1_rule(mid: Dataset) -> None:
    big = mid.amount > 220
    assert big.any()
    assert np.all(mid.is_fraud[big] == 1)
    assert np.all(mid.fraud_scenario[big] >= 1)
    assert np.all(mid.amount[mid.fraud_scenario == 0] <= 220)
    assert (mid.fraud_scenario == 1).any()


def test_scenarios_2_and_3_produce_frauds(small: Dataset) -> None:
    assert (small.fraud_scenario == 2).sum() > 0
    assert (small.fraud_scenario == 3).sum() > 0
    assert np.array_equal(small.is_fraud, (small.fraud_scenario > 0).astype(np.int8))
    assert set(np.unique(small.fraud_scenario).tolist()) <= {0, 1, 2, 3}


def test_fraud_rate_plausible_at_mid_size(mid: Dataset) -> None:
    # 2 terminals/day for 28 days over 2000 terminals plus 1/3 of the transactions of
    # 3 customers/day for 14 days over 1000 customers: about 2.1% + 1.25% + scenario 1.
    rate = float(mid.is_fraud.mean())
    assert 0.025 < rate < 0.045, rate
    assert 90_000 < len(mid) < 140_000  # 1000 customers * ~2 tx/day * 60 days, minus drops


def test_amount_scale_scales_genuine_amounts() -> None:
    base = simulate(SMALL)
    scaled = simulate(SimulationConfig(n_customers=200, n_terminals=400, nb_days=30,
                                       amount_scale=2.0))
    assert len(base) == len(scaled)
    assert np.array_equal(base.timestamp_s, scaled.timestamp_s)
    genuine = (base.is_fraud == 0) & (scaled.is_fraud == 0)
    assert genuine.sum() > 0.6 * len(base)
    assert np.allclose(scaled.amount[genuine], 2 * base.amount[genuine], atol=0.0151)
    assert (scaled.fraud_scenario == 1).sum() > (base.fraud_scenario == 1).sum()


def test_progress_reports_days() -> None:
    calls: list[tuple[int, int]] = []
    simulate(SimulationConfig(n_customers=10, n_terminals=20, nb_days=4),
             progress=lambda d, n: calls.append((d, n)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_available_terminals_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    customers = generate_customers(50, rng)
    terminals = generate_terminals(300, rng)
    reach = available_terminals(customers, terminals, 10.0)
    for c in range(50):
        dist = np.hypot(terminals.x - customers.x[c], terminals.y - customers.y[c])
        assert np.array_equal(reach.of(c), np.flatnonzero(dist < 10.0))
    assert isinstance(customers, CustomerProfiles) and isinstance(terminals, TerminalProfiles)
    assert np.allclose(customers.std_amount, customers.mean_amount / 2)
    assert customers.mean_amount.min() >= 5 and customers.mean_nb_tx_per_day.max() <= 4


def test_scenario_2_marks_28_day_window() -> None:
    rng = np.random.default_rng(5)
    terminal = np.repeat(np.arange(10), 40)
    day = np.tile(np.arange(40), 10)
    mask = scenario_2(terminal, day, n_terminals=10, nb_days=40, rng=np.random.default_rng(5))
    expected = np.zeros((10, 40), dtype=bool)
    for d in range(40):
        expected[rng.choice(10, size=2, replace=False), d : d + 28] = True
    assert np.array_equal(mask, expected[terminal, day])


def test_scenario_3_hits_a_third_and_multiplies_by_5() -> None:
    customer = np.repeat(np.arange(3), 30)  # 3 customers: all compromised on day 0
    day = np.zeros(90, dtype=np.int64)
    hits = scenario_3(customer, day, n_customers=3, nb_days=1, rng=np.random.default_rng(0))
    assert hits.sum() == 30
    amount = np.full(90, 10.0)
    labels = inject_frauds(customer, customer, day, amount, 3, 3, 1, np.random.default_rng(0))
    third = labels.fraud_scenario == 3
    assert np.all(labels.amount[third] >= 50.0)
    assert np.all(labels.amount[~third] == 10.0)
    assert np.array_equal(labels.is_fraud, (labels.fraud_scenario > 0).astype(np.int8))


def test_timestamp_helpers() -> None:
    assert format_timestamp(START) == "2018-04-01T00:00:00Z"
    assert format_timestamp(START + 7 * 3600 + 19 * 60 + 5) == "2018-04-01T07:19:05Z"
    assert parse_timestamp("2018-04-01T07:19:05Z") == START + 26345
    assert parse_timestamp("2018-04-01T07:19:05+00:00") == START + 26345
    assert parse_timestamp("2018-04-01T09:19:05+02:00") == START + 26345
    for bad in ("2018-04-01", "2018-04-01T07:19:05", "2018-02-30T00:00:00Z", "nonsense"):
        with pytest.raises(ValueError):
            parse_timestamp(bad)


def test_csv_round_trip(small: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    write_csv(small, path)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert lines[1].split(",")[1] == format_timestamp(int(small.timestamp_s[0]))
    assert len(lines) == len(small) + 1
    assert read_csv(path) == small
    assert not list(tmp_path.glob("*.tmp"))


def test_csv_round_trip_fast_and_slow_timestamp_paths(tmp_path: Path) -> None:
    seconds = np.sort(np.random.default_rng(1).integers(0, 4_102_444_800, size=2000))
    n = len(seconds)
    ds = Dataset(
        transaction_id=np.array([f"t{i}" for i in range(n)], dtype=object),
        timestamp_s=seconds.astype(np.int64),
        card_id=np.array(["C, \"quoted\""] * n, dtype=object),
        merchant_id=np.array(["M1"] * n, dtype=object),
        amount=np.round(np.random.default_rng(2).uniform(0, 500, n), 2),
        is_fraud=np.zeros(n, dtype=np.int8),
        fraud_scenario=np.zeros(n, dtype=np.int8),
    )
    path = tmp_path / "tx.csv"
    write_csv(ds, path)
    assert read_csv(path) == ds
    text = path.read_text()
    path.write_text(text.replace("Z,", "+00:00,", 500))  # mixed offset spellings
    assert read_csv(path) == ds


def test_to_records_contract(small: Dataset) -> None:
    first = next(to_records(small))
    assert first == {
        "transaction_id": "tx-000000000",
        "timestamp": format_timestamp(int(small.timestamp_s[0])),
        "card_id": small.card_id[0],
        "merchant_id": small.merchant_id[0],
        "amount": float(small.amount[0]),
        "is_fraud": int(small.is_fraud[0]),
        "fraud_scenario": int(small.fraud_scenario[0]),
    }
    assert type(first["amount"]) is float and type(first["is_fraud"]) is int
    window = list(to_records(small, 100, 110))
    assert [r["transaction_id"] for r in window] == small.transaction_id[100:110].tolist()
    assert sum(1 for _ in to_records(small)) == len(small)


HEADER = ",".join(COLUMNS)
GOOD_ROWS = [
    "a,2018-04-01T00:00:10Z,C00001,M00001,10.50,0,0",
    "b,2018-04-01T00:00:20Z,C00002,M00002,300.00,1,1",
    "c,2018-04-01T00:00:30Z,C00003,M00003,12.00,0,0",
]


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "in.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_csv_sorts_stably_and_defaults_scenario(tmp_path: Path) -> None:
    header = "transaction_id,timestamp,card_id,merchant_id,amount,is_fraud"
    rows = [
        "x,2018-04-01T00:00:30Z,C1,M1,1.00,0",
        "y,2018-04-01T00:00:10+00:00,C1,M1,2.00,1",
        "z,2018-04-01T00:00:30Z,C1,M1,3.00,0",
    ]
    ds = read_csv(_write(tmp_path, [header, *rows]))
    assert ds.transaction_id.tolist() == ["y", "x", "z"]
    assert ds.fraud_scenario.tolist() == [0, 0, 0]
    assert ds.is_fraud.tolist() == [1, 0, 0]


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ("d,2018-04-01 00:00:40,C4,M4,1.00,0,0", r":3: column 'timestamp': .*2018-04-01 00:00:40"),
        ("d,2018-13-01T00:00:40Z,C4,M4,1.00,0,0", r":3: column 'timestamp': "),
        ("d,2018-04-01T00:00:40Z,C4,M4,abc,0,0", r":3: column 'amount': non-numeric amount 'abc'"),
        ("d,2018-04-01T00:00:40Z,C4,M4,-1.5,0,0", r":3: column 'amount': negative amount"),
        ("d,2018-04-01T00:00:40Z,C4,M4,nan,0,0", r":3: column 'amount': NaN amount"),
        ("d,2018-04-01T00:00:40Z,C4,M4,1.00,2,0", r":3: column 'is_fraud': .*0 or 1, got '2'"),
        ("d,2018-04-01T00:00:40Z,C4,M4,1.00,yes,0", r":3: column 'is_fraud': "),
        ("d,2018-04-01T00:00:40Z,C4,M4,1.00,0,7", r":3: column 'fraud_scenario': "),
        ("d,2018-04-01T00:00:40Z,C4,M4,1.00,0", r":3: expected 7 fields, got 6"),
    ],
)
def test_read_csv_rejects_bad_values(tmp_path: Path, row: str, pattern: str) -> None:
    path = _write(tmp_path, [HEADER, GOOD_ROWS[0], row, GOOD_ROWS[2]])
    with pytest.raises(CsvFormatError, match=re.escape(str(path)) + pattern) as info:
        read_csv(path)
    assert "\n" not in str(info.value)


def test_read_csv_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, [HEADER, GOOD_ROWS[0], "", GOOD_ROWS[1], "e,bad,C,M,1,0,0"])
    with pytest.raises(CsvFormatError, match=re.escape(f"{path}:5: column 'timestamp'")):
        read_csv(path)


@pytest.mark.parametrize("missing", ["transaction_id", "timestamp", "amount", "is_fraud"])
def test_read_csv_missing_required_column(tmp_path: Path, missing: str) -> None:
    keep = [i for i, name in enumerate(COLUMNS) if name != missing]
    lines = [",".join(line.split(",")[i] for i in keep) for line in [HEADER, *GOOD_ROWS]]
    path = _write(tmp_path, lines)
    with pytest.raises(CsvFormatError, match=re.escape(f"{path}:1: missing required column "
                                                       f"'{missing}'")):
        read_csv(path)


def test_read_csv_missing_or_empty_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(CsvFormatError, match=re.escape(f"{missing}: file not found")):
        read_csv(missing)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CsvFormatError, match=re.escape(f"{empty}:1: empty file")):
        read_csv(empty)
    assert issubclass(CsvFormatError, ValueError)


def test_read_csv_header_only_gives_empty_dataset(tmp_path: Path) -> None:
    ds = read_csv(_write(tmp_path, [HEADER]))
    assert len(ds) == 0
    assert ds.timestamp_s.dtype == np.int64 and ds.amount.dtype == np.float64
