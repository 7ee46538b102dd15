"""The Handbook backtest protocol: windows, known-compromised cards, card precision@k, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudstream.cli import main
from fraudstream.features import build_feature_matrix
from fraudstream.features.definitions import DAY_S, lookback_days
from fraudstream.model_registry.backtest import (
    BacktestError,
    Windows,
    backtest_rows,
    card_precision_at_k,
    run_backtest,
    split,
)
from fraudstream.simulator import Dataset, SimulationConfig, simulate, write_csv
from tests.unit.model_registry.test_handbook_port import card_precision_top_k, handbook_frame

T0 = 1_522_540_800  # 2018-04-01T00:00:00Z
DAY0 = T0 // DAY_S


def hand_dataset(rows: list[tuple[int, str, int]]) -> Dataset:
    """(day offset, card, is_fraud) rows at noon, in time order."""
    n = len(rows)
    return Dataset(
        transaction_id=np.array([f"t{i}" for i in range(n)], dtype=object),
        timestamp_s=np.array([T0 + d * DAY_S + 43_200 + i for i, (d, _c, _f) in enumerate(rows)],
                             dtype=np.int64),
        card_id=np.array([c for _d, c, _f in rows], dtype=object),
        merchant_id=np.array(["M1"] * n, dtype=object),
        amount=np.full(n, 10.0), is_fraud=np.array([f for _d, _c, f in rows], dtype=np.int8),
        fraud_scenario=np.zeros(n, dtype=np.int8))


def test_windows_follow_the_protocol_dates() -> None:
    w = Windows.starting("2018-04-01", 7, 7, 7)
    assert (w.train_start_day, w.test_start_day, w.end_day) == (DAY0, DAY0 + 14, DAY0 + 21)
    with pytest.raises(BacktestError, match="not a date"):
        Windows.starting("25/07/2018")
    with pytest.raises(BacktestError, match="--test-days must be at least 1"):
        Windows.starting("2018-04-01", test_days=0)


def test_known_compromised_cards_leave_the_test_set_day_by_day() -> None:
    # Train days 0-1, delay 2 (days 2-3), test days 4-6.
    w = Windows(DAY0, train_days=2, delay_days=2, test_days=3)
    ds = hand_dataset([
        (0, "A", 1),               # fraud in training: A never tested
        (1, "B", 0),
        (2, "C", 1),               # fraud on day 2: known from test day 2 + 2 + 1 = 5 on
        (3, "D", 1),               # fraud on day 3: known from test day 6
        (4, "A", 0), (4, "C", 1), (4, "D", 0), (4, "E", 0),
        (5, "A", 0), (5, "C", 0), (5, "D", 1), (5, "E", 1),
        (6, "C", 0), (6, "D", 0), (6, "E", 0),
        (7, "E", 0),               # after the test window
    ])
    parts = split(ds, w)
    assert parts.train.tolist() == [0, 1]
    assert parts.test_window.tolist() == list(range(4, 15))
    evaluated = [(int(ds.timestamp_s[i]) // DAY_S - DAY0, ds.card_id[i]) for i in parts.evaluated]
    assert evaluated == [(4, "C"), (4, "D"), (4, "E"), (5, "D"), (5, "E"), (6, "E")]


def test_card_precision_at_k_by_hand() -> None:
    # Day 1, cards by max score: X .9 (fraud), Y .8, Z .7 (fraud). Day 2: X .99 (fraud),
    # W .95, Z .6 (fraud), Y .5. k=2: day 1 X,Y -> 1/2; day 2 without X: W,Z -> 1/2.
    # k=3: day 1 X,Y,Z -> 2/3; day 2 without X and Z: W,Y -> 0/3 (k stays the divisor).
    # k=1: day 1 X -> 1; day 2 without X: W -> 0 (keeping X would have counted it twice).
    days = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    cards = np.array(["X", "X", "Y", "Z", "X", "Z", "Y", "W"])
    fraud = np.array([0, 1, 0, 1, 1, 1, 0, 0])
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.99, 0.6, 0.5, 0.95])
    assert card_precision_at_k(days, cards, fraud, scores, k=2) == pytest.approx(0.5)
    assert card_precision_at_k(days, cards, fraud, scores, k=3) == pytest.approx(1 / 3)
    assert card_precision_at_k(days, cards, fraud, scores, k=1) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def small() -> Dataset:
    return simulate(SimulationConfig(n_customers=400, n_terminals=800, nb_days=60, seed=3))


def test_window_rows_give_the_same_features_as_the_whole_file(small: Dataset) -> None:
    w = Windows.starting("2018-05-15", 5, 7, 5)
    part = backtest_rows(small, w, 7)
    assert part.timestamp_s[0] >= (w.train_start_day - lookback_days(7)) * DAY_S
    assert 0 < len(part) < len(small)
    full = build_feature_matrix(small.timestamp_s, small.card_id, small.merchant_id,
                                small.amount, small.is_fraud, 7)
    windowed = build_feature_matrix(part.timestamp_s, part.card_id, part.merchant_id,
                                    part.amount, part.is_fraud, 7)
    offset = int(np.searchsorted(small.timestamp_s, part.timestamp_s[0]))
    inside = part.timestamp_s >= w.train_start_day * DAY_S
    np.testing.assert_array_equal(windowed[inside], full[offset:offset + len(part)][inside])


def test_backtest_scores_every_test_window_transaction(small: Dataset) -> None:
    w = Windows.starting("2018-05-10", 7, 7, 7)
    result = run_backtest(small, w, "logreg")
    m = result.metrics
    days = small.timestamp_s // DAY_S
    in_window = (days >= w.test_start_day) & (days < w.end_day)
    assert sorted(result.transaction_ids.tolist()) == sorted(small.transaction_id[in_window])
    # The metrics, recomputed as the Handbook's performance_assessment does on the test rows of
    # cards not known to be compromised: sklearn's AUC ROC and AP, and the port's CP@100.
    parts = split(small, w)
    ev = parts.evaluated
    score_of = dict(zip(result.transaction_ids.tolist(), result.scores.tolist(), strict=True))
    scores = [score_of[t] for t in small.transaction_id[ev].tolist()]
    y = small.is_fraud[ev]
    assert m["auc_roc"] == roc_auc_score(y, scores)
    assert m["average_precision"] == average_precision_score(y, scores)
    predictions_df = handbook_frame(small.timestamp_s[ev].tolist(), small.card_id[ev].tolist(),
                                    y.tolist(), scores)
    _nb_compromised, per_day, cp_at_100 = card_precision_top_k(predictions_df, 100)
    assert len(per_day) == 7
    assert m["card_precision_at_100"] == pytest.approx(cp_at_100, rel=1e-12, abs=0)
    assert (m["train_rows"], m["train_frauds"]) == (len(parts.train),
                                                    small.is_fraud[parts.train].sum())
    assert (m["test_rows"], m["test_frauds"]) == (len(ev), y.sum())
    assert m["test_rows"] < m["test_window_rows"] == in_window.sum()


@pytest.mark.parametrize(("start", "model", "message"), [
    ("2018-03-01", "logreg", "before the data"),
    ("2018-05-20", "logreg", "after the data"),
    ("2018-05-10", "xgboost", "unknown model family 'xgboost'"),
])
def test_backtest_refuses_windows_outside_the_data_and_unknown_models(
        small: Dataset, start: str, model: str, message: str) -> None:
    with pytest.raises(BacktestError, match=message):
        run_backtest(small, Windows.starting(start), model)


def test_a_training_window_without_fraud_is_refused(small: Dataset) -> None:
    w = Windows.starting("2018-05-10")
    genuine = small.take(np.flatnonzero(
        (small.is_fraud == 0) | (small.timestamp_s >= (w.train_start_day + 7) * DAY_S)))
    with pytest.raises(BacktestError, match="training window holds no fraud"):
        run_backtest(genuine, w, "logreg")


def test_cli_writes_json_and_predictions(small: Dataset, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data.csv"
    write_csv(small, data)
    args = ["backtest", "--data", str(data), "--train-start", "2018-05-10", "--model", "logreg",
            "--json", str(tmp_path / "m.json"), "--predictions", str(tmp_path / "p.csv")]
    assert main(args) == 0
    assert "card_precision_at_100" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"auc_roc", "average_precision", "card_precision_at_100"} <= set(metrics)
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "transaction_id,score"
    assert len(lines) - 1 == metrics["test_window_rows"]


@pytest.mark.parametrize(("content", "args", "message"), [
    ("transaction_id,timestamp,card_id,merchant_id,amount\n"
     "t1,2018-04-01T00:00:00Z,C1,M1,1.0\n", [], "missing required column 'is_fraud'"),
    ("transaction_id,timestamp,card_id,merchant_id,amount,is_fraud\n"
     "t1,yesterday,C1,M1,1.0,0\n", [], "timestamp"),
    ("transaction_id,timestamp,card_id,merchant_id,amount,is_fraud\n", [], "no transactions"),
    ("x\n", ["--model", "nope"], "unknown model family 'nope'"),
    ("x\n", ["--train-start", "soon"], "not a date"),
])
def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   content: str, args: list[str], message: str) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(content)
    argv = ["backtest", "--data", str(data), "--train-start", "2018-04-01", *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fraudstream backtest: error:") and message in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("cut_s", [DAY_S // 2 + 1234, 3 * DAY_S + 61_000, 7 * DAY_S - 1])
def test_labels_younger_than_the_delay_change_no_prediction(small: Dataset, cut_s: int) -> None:
    """Black box: flip every label of a transaction younger than the delay at time ``c`` (every
    test-window label included when ``c`` is the window's last second); no prediction for a
    transaction up to ``c`` may change, not in the last bit."""
    w = Windows.starting("2018-05-10", 7, 7, 7)
    cut = w.test_start_day * DAY_S + cut_s
    young = small.timestamp_s > cut - w.delay_days * DAY_S
    flipped = small.take(np.arange(len(small)))
    flipped.is_fraud[young] = 1 - flipped.is_fraud[young]
    assert young.sum() > 1000 and flipped.is_fraud[young].sum() > 50
    if cut_s == 7 * DAY_S - 1:
        in_test = small.timestamp_s >= w.test_start_day * DAY_S
        assert (young >= in_test).all()  # every test-window label is flipped
    before = run_backtest(small, w, "logreg")
    after = run_backtest(flipped, w, "logreg")
    ts_of = dict(zip(small.transaction_id.tolist(), small.timestamp_s.tolist(), strict=True))
    upto = np.array([ts_of[t] <= cut for t in before.transaction_ids.tolist()])
    assert upto.sum() > 200
    assert before.transaction_ids.tolist() == after.transaction_ids.tolist()
    np.testing.assert_array_equal(before.scores[upto], after.scores[upto])
    # The flipped labels do reach later transactions: the test can see a change.
    if not upto.all():
        assert (before.scores[~upto] != after.scores[~upto]).any()


def test_cli_runs_every_model_on_every_split_with_means(
        small: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data.csv"
    write_csv(small, data)
    starts = ["2018-05-03", "2018-05-10"]
    args = ["backtest", "--data", str(data), "--train-start", ",".join(starts), "--model",
            "logreg,hgb", "--jobs", "2", "--json", str(tmp_path / "m.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "logreg mean of 2 splits" in out and "hgb mean of 2 splits" in out
    doc = json.loads((tmp_path / "m.json").read_text())
    assert [(r["model"], r["train_start"]) for r in doc["runs"]] == [
        ("logreg", starts[0]), ("logreg", starts[1]), ("hgb", starts[0]), ("hgb", starts[1])]
    for model in ("logreg", "hgb"):
        # Each split alone gives what the joint run reports, and the mean is of those.
        alone = [run_backtest(small, Windows.starting(s), model).metrics for s in starts]
        runs = [r for r in doc["runs"] if r["model"] == model]
        for r, a in zip(runs, alone, strict=True):
            assert r["auc_roc"] == a["auc_roc"]
            assert r["card_precision_at_100"] == a["card_precision_at_100"]
        mean = next(m for m in doc["means"] if m["model"] == model)
        assert mean["splits"] == 2
        assert mean["average_precision"] == pytest.approx(
            (alone[0]["average_precision"] + alone[1]["average_precision"]) / 2, rel=1e-12)


@pytest.mark.parametrize(("args", "message"), [
    (["--train-start", "2018-05-03,2018-05-10", "--predictions", "p.csv"],
     "--predictions takes one --train-start and one --model"),
    (["--train-start", "2018-05-03,,2018-05-10"], "has an empty item"),
    (["--model", "hgb,hgb"], "names a value twice"),
    (["--jobs", "0"], "--jobs must be at least 1"),
])
def test_cli_refuses_bad_lists_before_reading_the_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        message: str) -> None:
    argv = ["backtest", "--data", str(tmp_path / "absent.csv"), "--train-start", "2018-05-03",
            *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
