"""fraudstream train: fit a model on labelled transactions and write a signed artifact."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from fraudstream.commands.simulate_cmd import add_simulation_args, config_from_args, run_simulation
from fraudstream.errors import UserError
from fraudstream.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model and write a signed artifact",
                       description="Train on a labelled CSV (--data) or on freshly simulated data, "
                       "validate on the newest 20%% of rows (time-ordered, no shuffling), choose "
                       "review/decline thresholds for precision targets, and write the skops "
                       "model plus its signed manifest to --out (default FRAUDSTREAM_MODEL_PATH), "
                       "and register it as a version in the model registry "
                       "(FRAUDSTREAM_MODEL_STORES; --promote also makes it production). "
                       "Needs FRAUDSTREAM_SIGNING_KEY.")
    p.add_argument("--data", type=Path, help="labelled CSV (default: simulate one)")
    p.add_argument("--model", default="hgb", help="model family: hgb or logreg (default hgb)")
    p.add_argument("--out", type=Path, default=None, help="artifact path")
    p.add_argument("--promote", action="store_true",
                   help="promote the new version to production (workers swap to it)")
    p.add_argument("--no-register", action="store_true",
                   help="only write the file; do not register it in the model registry")
    p.add_argument("--if-missing", action="store_true",
                   help="do nothing if a verified model already exists at --out")
    add_simulation_args(p, customers=1000, terminals=2000, days=60)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from model_registry.artifact import ArtifactError, load_verified, save_signed
    from model_registry.training import TrainingError, train
    from simulator import CsvFormatError, read_csv

    key = settings.signing_key.encode()
    if not key:
        raise UserError("FRAUDSTREAM_SIGNING_KEY is not set; models are signed with it "
                        "(generate one: python -c 'import secrets; print(secrets.token_hex(32))')")
    out: Path = args.out or settings.model_path
    if args.if_missing and out.exists():
        try:
            model = load_verified(out, key)
            print(f"model {model.version} already at {out}; nothing to do")
            return 0
        except ArtifactError as exc:
            print(f"existing model unusable ({exc}); training a new one", file=sys.stderr)
    if args.data:
        try:
            ds = read_csv(args.data)
        except CsvFormatError as exc:
            raise UserError(str(exc)) from exc
    else:
        ds = run_simulation(config_from_args(args))
    try:
        trained = train(ds, args.model, settings.label_delay_days,
                        progress=lambda msg: print(msg, file=sys.stderr))
    except TrainingError as exc:
        raise UserError(str(exc)) from exc
    save_signed(out, trained.model_bytes, trained.manifest, key)
    m = trained.manifest
    print(f"model {m.version} -> {out} (review >= {m.review_threshold:.3f}, "
          f"decline >= {m.decline_threshold:.3f})")
    if not args.no_register:
        register_trained(settings, out, promote=args.promote)
    return 0


def register_trained(settings: Settings, path: Path, promote: bool) -> None:
    """Register the model file at ``path``; promote (and announce) it if asked."""
    from features import FEATURE_NAMES
    from fraudstream.commands.registry_cmd import announce, import_artifact, open_registry
    from model_registry.errors import RegistryError

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


def ensure_model(settings: Settings, family: str = "hgb") -> str:
    """The version of the verified model at FRAUDSTREAM_MODEL_PATH, training one if needed."""
    args = build_defaults()
    args.out, args.if_missing, args.model, args.data = settings.model_path, True, family, None
    args.no_register = True  # ensure_production registers it, tolerating a registry outage
    # Callers (demo, bench) keep stdout for their own JSON.
    with contextlib.redirect_stdout(sys.stderr):
        run(args, settings)
        return ensure_production(settings)


def ensure_production(settings: Settings) -> str:
    """The registry's production version, importing and promoting the model file if none.

    With the registry unreachable the file's version is returned (workers then serve it).
    """
    from features import FEATURE_NAMES
    from fraudstream.commands.registry_cmd import import_artifact, open_registry
    from model_registry.artifact import load_verified
    from model_registry.errors import NotFound, RegistryError

    try:
        registry = open_registry(settings)
        try:
            return str(registry.resolve("production"))
        except NotFound:
            version = import_artifact(registry, settings.model_path, settings)
            return str(registry.promote(version, "production", FEATURE_NAMES).version)
    except RegistryError as exc:
        print(f"model registry unavailable ({exc}); workers serve {settings.model_path}",
              file=sys.stderr)
    return load_verified(settings.model_path, settings.signing_key.encode()).version


def build_defaults() -> argparse.Namespace:
    """This command's arguments with their defaults (for callers that train programmatically)."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["train"])
