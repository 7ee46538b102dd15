"""fraudstream backtest: the Handbook's train / delay / test protocol on a labelled CSV."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from fraudstream.commands.json_output import add_json_option, emit
from fraudstream.commands.model_families import DEFAULT_MODEL_FAMILY, MODEL_HELP
from fraudstream.errors import UserError
from fraudstream.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest", help="measure a model family with the Handbook's backtest protocol",
        description="Train on --train-days days from --train-start, skip --delay-days (labels "
        "not yet known), test on the next --test-days days. Cards already known to be "
        "compromised (a fraud in training, or a fraud up to the delay before each test day) "
        "are removed from the test set. Prints and optionally writes auc_roc, "
        "average_precision and card_precision_at_100 (daily top-100 cards by their highest "
        "score, cards detected on earlier days left out, averaged over days).")
    p.add_argument("--data", type=Path, required=True, help="labelled CSV (with is_fraud)")
    p.add_argument("--train-start", required=True, help="first training day, YYYY-MM-DD (UTC)")
    p.add_argument("--train-days", type=int, default=7, help="training days (default 7)")
    p.add_argument("--delay-days", type=int, default=7,
                   help="days between training and test: the label delay (default 7)")
    p.add_argument("--test-days", type=int, default=7, help="test days (default 7)")
    p.add_argument("--model", default=DEFAULT_MODEL_FAMILY, help=MODEL_HELP)
    add_json_option(p, "the metrics")
    p.add_argument("--predictions", type=Path,
                   help="write transaction_id,score for every transaction of the test window "
                   "(including the known-compromised cards left out of the metrics)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.model_registry.backtest import BacktestError, Windows, run_backtest
    from fraudstream.simulator import CsvFormatError, read_csv

    started = time.perf_counter()
    try:
        windows = Windows.starting(args.train_start, args.train_days, args.delay_days,
                                   args.test_days)
        from fraudstream.model_registry.families import family

        family(args.model)  # an unknown name fails before the CSV is read
    except (BacktestError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    try:
        ds = read_csv(args.data)
    except CsvFormatError as exc:
        raise UserError(str(exc)) from exc
    try:
        result = run_backtest(ds, windows, args.model,
                              progress=lambda msg: print(msg, file=sys.stderr))
    except BacktestError as exc:
        raise UserError(str(exc)) from exc
    result.timings_s["total"] = time.perf_counter() - started
    summary = result.summary()
    m = result.metrics
    emit(args, summary, lambda: print(
        f"{result.family}: auc_roc {m['auc_roc']:.3f}  average_precision "
        f"{m['average_precision']:.3f}  card_precision_at_100 "
        f"{m['card_precision_at_100']:.3f}  ({int(m['test_rows']):,} test transactions, "
        f"{int(m['test_frauds']):,} frauds; {summary['timings_s']['total']:.0f} s)"))
    if args.predictions:
        args.predictions.parent.mkdir(parents=True, exist_ok=True)
        with args.predictions.open("w", newline="") as fh:
            from fraudstream.simulator.csv_cells import escape_cell

            writer = csv.writer(fh)
            writer.writerow(["transaction_id", "score"])
            # Ids come from the input CSV: escaped so a spreadsheet never runs one.
            writer.writerows((escape_cell(str(tid)), f"{s:.6f}") for tid, s in zip(
                result.transaction_ids.tolist(), result.scores.tolist(), strict=True))
    return 0
