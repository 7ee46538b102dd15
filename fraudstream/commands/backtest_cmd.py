"""fraudstream backtest: the Handbook's train / delay / test protocol on a labelled CSV."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraudstream.commands.json_output import add_json_option, emit
from fraudstream.commands.model_families import DEFAULT_MODEL_FAMILY, MODEL_HELP
from fraudstream.errors import UserError
from fraudstream.settings import Settings

if TYPE_CHECKING:
    from fraudstream.model_registry.backtest import BacktestResult


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest", help="measure a model family with the Handbook's backtest protocol",
        description="Train on --train-days days from --train-start, skip --delay-days (labels "
        "not yet known), test on the next --test-days days. Cards already known to be "
        "compromised (a fraud in training, or a fraud up to the delay before each test day) "
        "are removed from the test set. Prints and optionally writes auc_roc, "
        "average_precision and card_precision_at_100 (daily top-100 cards by their highest "
        "score, cards detected on earlier days left out, averaged over days). Several "
        "--train-start dates and --model families, comma-separated, run every family on every "
        "split with the features computed once, and add each family's mean over the splits.")
    p.add_argument("--data", type=Path, required=True, help="labelled CSV (with is_fraud)")
    p.add_argument("--train-start", required=True,
                   help="first training day, YYYY-MM-DD (UTC); several, comma-separated, for "
                   "one split each (for example 2018-05-16,2018-06-06)")
    p.add_argument("--train-days", type=int, default=7, help="training days (default 7)")
    p.add_argument("--delay-days", type=int, default=7,
                   help="days between training and test: the label delay (default 7)")
    p.add_argument("--test-days", type=int, default=7, help="test days (default 7)")
    p.add_argument("--model", default=DEFAULT_MODEL_FAMILY,
                   help=f"{MODEL_HELP}; several, comma-separated, to compare them")
    p.add_argument("--jobs", type=int, default=None,
                   help="processes computing the features (default: the CPUs available)")
    add_json_option(p, "the metrics (one split and model: its metrics; several: "
                    "{\"runs\": [...], \"means\": [...]})")
    p.add_argument("--predictions", type=Path,
                   help="write transaction_id,score for every transaction of the test window "
                   "(including the known-compromised cards left out of the metrics); one "
                   "split and one model only")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.model_registry.backtest import BacktestError, Windows, run_backtests
    from fraudstream.simulator import CsvFormatError, read_csv

    started = time.perf_counter()
    starts = _listed(args.train_start, "--train-start")
    models = _listed(args.model, "--model")
    if args.predictions and len(starts) * len(models) > 1:
        raise UserError("--predictions takes one --train-start and one --model; run once per "
                        "split to keep each one's predictions")
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {args.jobs}")
    try:
        windows = [Windows.starting(start, args.train_days, args.delay_days, args.test_days)
                   for start in starts]
        from fraudstream.model_registry.families import family

        for model in models:
            family(model)  # an unknown name fails before the CSV is read
    except (BacktestError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    try:
        ds = read_csv(args.data)
    except CsvFormatError as exc:
        raise UserError(str(exc)) from exc
    try:
        results = run_backtests(ds, windows, models, jobs=args.jobs,
                                progress=lambda msg: print(msg, file=sys.stderr))
    except BacktestError as exc:
        raise UserError(str(exc)) from exc
    total_s = time.perf_counter() - started
    for result in results:
        result.timings_s["total"] = total_s
    if len(results) == 1:
        document: dict[str, Any] = results[0].summary()
    else:
        document = {"runs": [r.summary() for r in results], "means": _means(results, models)}
    emit(args, document, lambda: _print(results, models, len(windows), total_s))
    if args.predictions:
        _write_predictions(args.predictions, results[0])
    return 0


def _listed(value: str, option: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise UserError(f"{option} {value!r} has an empty item; separate values by single "
                        "commas")
    if len(set(items)) < len(items):
        raise UserError(f"{option} {value!r} names a value twice")
    return items


def _means(results: Sequence[BacktestResult], models: Sequence[str]) -> list[dict[str, Any]]:
    from fraudstream.model_registry.backtest import mean_over_splits

    out = []
    for model in models:
        mine = [r for r in results if r.family == model]
        out.append({"model": model, "splits": len(mine), **mean_over_splits(mine)})
    return out


def _print(results: Sequence[BacktestResult], models: Sequence[str], splits: int,
           total_s: float) -> None:
    for r in results:
        m = r.metrics
        where = f" from {r.summary()['train_start']}" if len(results) > 1 else ""
        print(f"{r.family}{where}: auc_roc {m['auc_roc']:.3f}  average_precision "
              f"{m['average_precision']:.3f}  card_precision_at_100 "
              f"{m['card_precision_at_100']:.3f}  ({int(m['test_rows']):,} test transactions, "
              f"{int(m['test_frauds']):,} frauds"
              + ("" if len(results) > 1 else f"; {total_s:.0f} s") + ")")
    if splits > 1:
        for mean in _means(results, models):
            print(f"{mean['model']} mean of {mean['splits']} splits: auc_roc "
                  f"{mean['auc_roc']:.3f}  average_precision {mean['average_precision']:.3f}  "
                  f"card_precision_at_100 {mean['card_precision_at_100']:.3f}")
    if len(results) > 1:
        print(f"({total_s:.0f} s)")


def _write_predictions(path: Path, result: BacktestResult) -> None:
    from fraudstream.simulator.csv_cells import escape_cell

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["transaction_id", "score"])
        # Ids come from the input CSV: escaped so a spreadsheet never runs one.
        writer.writerows((escape_cell(str(tid)), f"{s:.6f}") for tid, s in zip(
            result.transaction_ids.tolist(), result.scores.tolist(), strict=True))
