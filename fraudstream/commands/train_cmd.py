"""fraudstream train: fit a model on labelled transactions and write a signed artifact."""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fraudstream.commands.model_families import DEFAULT_MODEL_FAMILY, MODEL_HELP
from fraudstream.commands.simulate_cmd import (
    DEMO_CUSTOMERS,
    add_simulation_args,
    config_from_args,
    run_simulation,
)
from fraudstream.errors import UserError
from fraudstream.operations.models import ensure_production, file_version
from fraudstream.settings import Settings

if TYPE_CHECKING:
    from fraudstream.model_registry.training import TrainingPlan
    from fraudstream.simulator import SimulationConfig

#: Days ``fraudstream train`` simulates by default (and ``ensure_model`` trains on).
TRAIN_DAYS = 60


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model and write a signed artifact",
                       description="Train on a labelled CSV (--data) or on freshly simulated data. "
                       "Prequential validation: --folds folds stepping back from the newest data, "
                       "each training on --train-days days, skipping the label delay "
                       "(FRAUDSTREAM_LABEL_DELAY_DAYS) and validating on the next --val-days days "
                       "with known-compromised cards removed (no shuffling across time). The "
                       "family's hyperparameter grid, class weights included, is searched by mean "
                       "average precision over the older folds; the newest fold, which took no "
                       "part in the choice, gives the validation estimate, and its model is "
                       "shipped with review/decline thresholds for the precision targets (one "
                       "fold: no search), as a skops model plus its signed "
                       "manifest at --out (default FRAUDSTREAM_MODEL_PATH), registered as a "
                       "version in the model registry (FRAUDSTREAM_MODEL_STORES; --promote also "
                       "makes it production). Needs FRAUDSTREAM_SIGNING_KEY.")
    p.add_argument("--data", type=Path, help="labelled CSV (default: simulate one)")
    p.add_argument("--model", default=DEFAULT_MODEL_FAMILY, help=MODEL_HELP)
    p.add_argument("--train-days", type=int, default=7, help="training days per fold (default 7)")
    p.add_argument("--val-days", type=int, default=7, help="validation days per fold (default 7)")
    p.add_argument("--folds", type=int, default=3, help="validation folds, at most (default 3)")
    p.add_argument("--no-search", action="store_true",
                   help="skip the hyperparameter search (use the family's first setting)")
    p.add_argument("--no-cold-start", action="store_true",
                   help="do not add the data's first label-delay days (cards and merchants "
                   "with no history yet, as after a fresh start) to every fold's training rows")
    p.add_argument("--review-precision", type=float, default=0.2,
                   help="lowest score whose validation precision reaches this is `review` "
                   "(default 0.2)")
    p.add_argument("--decline-precision", type=float, default=0.8,
                   help="... and this is `decline` (default 0.8)")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="write report.md with PNG plots (ROC, precision-recall, confusion "
                   "matrices, score distributions, feature importance) here")
    p.add_argument("--out", type=Path, default=None,
                   help="artifact path, e.g. model.skops (its signed manifest is written next "
                   "to it with the suffix .json, so .json itself is refused)")
    p.add_argument("--promote", action="store_true",
                   help="promote the new version to production (workers swap to it)")
    p.add_argument("--no-register", action="store_true",
                   help="only write the file; do not register it in the model registry")
    p.add_argument("--if-missing", action="store_true",
                   help="do nothing if a verified model already exists at --out")
    add_simulation_args(p, customers=DEMO_CUSTOMERS, terminals=2 * DEMO_CUSTOMERS,
                        days=TRAIN_DAYS)
    p.set_defaults(run=run)


@dataclass(frozen=True)
class TrainRequest:
    """What to train and where to write it (``run`` builds it from the command line)."""

    out: Path
    family: str = DEFAULT_MODEL_FAMILY
    #: A labelled CSV, or None to simulate ``simulation``.
    data: Path | None = None
    simulation: SimulationConfig | None = None
    #: Folds, search and precision targets (None: ``TrainingPlan``'s defaults).
    plan: TrainingPlan | None = None
    #: Keep a verified model already at ``out`` (trained on this version's features).
    if_missing: bool = False
    report: Path | None = None


def run(args: argparse.Namespace, settings: Settings) -> int:
    for name in ("train_days", "val_days", "folds"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("review_precision", "decline_precision"):
        if not 0 < getattr(args, name) <= 1:
            raise UserError(f"--{name.replace('_', '-')} must be in (0, 1]")
    from fraudstream.model_registry.training import TrainingPlan

    plan = TrainingPlan(train_days=args.train_days, val_days=args.val_days, folds=args.folds,
                        search=not args.no_search, cold_start=not args.no_cold_start,
                        review_precision=args.review_precision,
                        decline_precision=args.decline_precision)
    request = TrainRequest(
        out=args.out or settings.model_path, family=args.model, data=args.data,
        simulation=None if args.data else config_from_args(args), plan=plan,
        if_missing=args.if_missing, report=args.report)
    if train_to_file(settings, request) and not args.no_register:
        register_trained(settings, request.out, promote=args.promote)
    return 0


def train_to_file(settings: Settings, request: TrainRequest) -> bool:
    """Train as ``request`` says and write the signed model; False when one was kept."""
    from fraudstream.model_registry.artifact import (
        ArtifactError,
        load_verified,
        manifest_path,
        save_signed,
    )
    from fraudstream.model_registry.training import TrainingError, TrainingPlan, train, write_report
    from fraudstream.operations.models import no_signing_key
    from fraudstream.simulator import CsvFormatError, read_csv

    key = settings.signing_key.encode()
    if not key:
        raise UserError(no_signing_key(settings, "models are signed with it (generate one: "
                                       "python -c 'import secrets; "
                                       "print(secrets.token_hex(32))')"))
    from fraudstream.model_registry.families import UnknownFamilyError, family

    try:
        family(request.family)  # an unknown name fails before any data is read or simulated
    except UnknownFamilyError as exc:
        raise UserError(str(exc)) from exc
    out = request.out
    if manifest_path(out) == out:
        raise UserError(f"--out {out}: the signed manifest is written next to the model as "
                        f"{manifest_path(out).name}, which would overwrite the model itself; "
                        "name the model file something else (e.g. model.skops)")
    if request.if_missing and out.exists():
        from fraudstream.features import FEATURE_NAMES

        try:
            model = load_verified(out, key)
            if list(model.manifest.feature_names) == list(FEATURE_NAMES):
                print(f"model {model.version} already at {out}; nothing to do")
                return False
            print(f"existing model {model.version} was trained on other features than this "
                  "version computes; training a new one", file=sys.stderr)
        except ArtifactError as exc:
            print(f"existing model unusable ({exc}); training a new one", file=sys.stderr)
    if request.data is not None:
        try:
            ds = read_csv(request.data)
        except CsvFormatError as exc:
            raise UserError(str(exc)) from exc
    else:
        assert request.simulation is not None, "a request without data names a simulation"
        ds = run_simulation(request.simulation)
    plan = request.plan or TrainingPlan()
    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    try:
        trained = train(ds, request.family, settings.label_delay_days, plan, progress=say)
    except TrainingError as exc:
        raise UserError(str(exc)) from exc
    if request.report:
        say(f"report -> {write_report(trained, request.report, say)}")
    save_signed(out, trained.model_bytes, trained.manifest, key)
    m = trained.manifest
    print(f"model {m.version} -> {out} (review >= {m.review_threshold:.3f}, "
          f"decline >= {m.decline_threshold:.3f})")
    return True


def register_trained(settings: Settings, path: Path, promote: bool) -> None:
    """Register the model file at ``path``; promote (and announce) it if asked."""
    from fraudstream.features import FEATURE_NAMES
    from fraudstream.model_registry.errors import RegistryError
    from fraudstream.operations.models import announce, import_artifact, open_registry

    try:
        registry = open_registry(settings)
        version = import_artifact(registry, path, settings)
        print(f"registered {version} in {len(registry.stores)} stores")
        if promote:
            done = registry.promote(version, "production", FEATURE_NAMES)
            announce(settings, done.alias, done.version, done.generation)
            print(f"production: {done.previous or '(none)'} -> {done.version}")
    except RegistryError as exc:
        raise UserError(f"model written to {path} but not registered: {exc} (start the "
                        "stores, then `fraudstream registry import`; or pass --no-register)"
                        ) from exc


def ensure_model(settings: Settings, family: str = "hgb", register: bool = True) -> str:
    """The version of the verified model at FRAUDSTREAM_MODEL_PATH, training one if needed.

    The demo and the benchmark need a working model quickly, not the best one: one fold, no
    search, on ``fraudstream train``'s default simulation. It is registered by
    ``ensure_production``, which tolerates a registry outage, unless ``register`` is false
    (the benchmark: its stack has no Redis, and its workers serve the file).
    """
    from fraudstream.model_registry.training import TrainingPlan
    from fraudstream.simulator import SimulationConfig

    request = TrainRequest(
        out=settings.model_path, family=family, plan=TrainingPlan(folds=1, search=False),
        if_missing=True,
        simulation=SimulationConfig(n_customers=DEMO_CUSTOMERS, n_terminals=2 * DEMO_CUSTOMERS,
                                    nb_days=TRAIN_DAYS))
    # Callers (demo, bench) keep stdout for their own JSON.
    with contextlib.redirect_stdout(sys.stderr):
        train_to_file(settings, request)
        if not register:
            return file_version(settings)
        return ensure_production(settings)
