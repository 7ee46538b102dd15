"""fraudstream registry: list, show, promote, roll back and verify model versions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fraudstream.commands.json_output import add_json_option, emit
from fraudstream.errors import UserError
from fraudstream.operations.models import announce, import_artifact, open_registry
from fraudstream.settings import Settings

DESCRIPTION = """\
The model registry keeps every version (skops bytes + signed manifest: metrics, training data
hash, features, thresholds, reference distributions) in every store of FRAUDSTREAM_MODEL_STORES
(default: a file store under FRAUDSTREAM_STATE_DIR plus Redis; `kafka:` adds a compacted topic
on the Kafka cluster, which workers on any host reach), and the aliases `production` (what
workers serve) and `shadow` (scored alongside, never deciding) with their history.

  list                      every version, oldest first, with its aliases
  show REF                  a version's manifest and the health of each replica (REF: a
                            version or an alias)
  promote REF [--alias A]   point alias A (default production) at REF once it loads and
                            verifies, and announce it on the model-updates topic: workers
                            swap to it between two batches
  rollback [--alias A]      point alias A back at the version it had before
  verify [--repair]         check every replica (SHA-256, signature) and the registry state
                            in every store; --repair copies a good replica over missing or
                            divergent ones. Exit status 1 while problems remain.
  import PATH               register a signed model file (and its manifest) as a version

Needs FRAUDSTREAM_SIGNING_KEY. Errors (unknown version, a store down, a tampered artifact) are
one line with exit status 2."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("registry", help="list, show, promote, roll back and verify models",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", help="every version with its aliases")
    add_json_option(ls, "the versions")
    show = actions.add_parser("show", help="a version's manifest and replicas")
    show.add_argument("ref", help="version or alias")
    show.add_argument("--full", action="store_true",
                      help="include the reference distributions")
    promote = actions.add_parser("promote", help="point an alias at a version")
    promote.add_argument("ref", help="version (or alias) to promote")
    promote.add_argument("--alias", default="production", help="production (default) or shadow")
    rollback = actions.add_parser("rollback", help="point an alias at its previous version")
    rollback.add_argument("--alias", default="production", help="production (default) or shadow")
    verify = actions.add_parser("verify", help="check (and repair) every replica")
    verify.add_argument("--repair", action="store_true", help="fix what can be fixed")
    add_json_option(verify, "the report")
    imp = actions.add_parser("import", help="register a signed model file")
    imp.add_argument("path", type=Path, help="the .skops file (its manifest next to it)")
    imp.add_argument("--promote", action="store_true", help="also promote it to production")
    rebase = actions.add_parser(
        "rebase-reference", help="accept a drift: register the model again with a reference "
        "built from recent traffic",
        description="Register version REF's model bytes again as REF-rebased-<time>, with the "
        "drift reference (histograms and per-feature thresholds) built from the last --rows "
        "rows of a labelled CSV of recent traffic in time order (its earlier rows feed the "
        "card and merchant histories). The old version is untouched; add --promote to put "
        "the new reference in use (workers swap it in like any version).")
    rebase.add_argument("ref", help="version (or alias) whose reference is re-based")
    rebase.add_argument("--from", dest="source", type=Path, required=True,
                        help="labelled CSV of recent transactions (the training CSV format)")
    rebase.add_argument("--rows", type=int, default=20000,
                        help="rows at the end of the CSV the reference describes (default "
                             "20000, the workers' default drift window)")
    rebase.add_argument("--promote", action="store_true", help="also promote it to production")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.model_registry.errors import RegistryError

    try:
        return _run(args, settings)
    except RegistryError as exc:
        raise UserError(str(exc)) from exc


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.features import FEATURE_NAMES

    registry = open_registry(settings)
    if args.action == "list":
        rows = registry.list_versions()
        emit(args, rows, lambda: _print_versions(rows))
        return 0
    if args.action == "show":
        body = registry.show(args.ref)
        if not args.full:
            ref = body["manifest"].get("reference", {})
            body["manifest"]["reference"] = {
                "features": sorted(ref.get("features", {})), "score": "score" in ref,
                "bins": ref.get("bins"), "(use --full for the histograms)": True}
        print(json.dumps(body, indent=2))
        return 0
    if args.action in ("promote", "rollback"):
        if args.action == "promote":
            done = registry.promote(args.ref, args.alias, FEATURE_NAMES)
        else:
            done = registry.rollback(args.alias, FEATURE_NAMES)
        announce(settings, done.alias, done.version, done.generation)
        print(f"{done.alias}: {done.previous or '(none)'} -> {done.version} "
              f"(generation {done.generation}; announced on {settings.topic_model_updates})")
        for uri in done.missed_stores:
            print(f"warning: {uri} was not updated; run `fraudstream registry verify --repair` "
                  "when it is back")
        return 0
    if args.action == "verify":
        report = registry.verify(repair=args.repair)
        emit(args, {"ok": report.ok, "generation": report.generation,
                    "versions": report.versions, "stores": report.stores,
                    "problems": [vars(p) for p in report.problems]},
             lambda: _print_verify(report))
        return 0 if report.ok else 1
    if args.action == "import":
        version = import_artifact(registry, args.path, settings)
        print(f"registered {version}")
        if args.promote:
            done = registry.promote(version, "production", FEATURE_NAMES)
            announce(settings, done.alias, done.version, done.generation)
            print(f"production: {done.previous or '(none)'} -> {done.version}")
        return 0
    if args.action == "rebase-reference":
        return _rebase(args, settings, registry)
    raise UserError(f"unknown action {args.action}")


def _print_versions(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no versions registered (train one: `fraudstream train`)")
    for r in rows:
        auc = r.get("metrics", {}).get("val_auc_roc")
        print(f"{r['version']:<40} {r.get('family', ''):<8} "
              f"{'' if auc is None else f'auc {auc:.3f}':<10} "
              f"{r.get('registered_at', ''):<26} {','.join(r['aliases'])}")


def _print_verify(report: Any) -> None:
    for uri, health in report.stores.items():
        print(f"store {uri}: {health}")
    for p in report.problems:
        state = "repaired" if p.repaired else "PROBLEM"
        print(f"{state}: {p.store} {p.version or 'registry state'}: {p.problem}")
    print(f"{report.versions} versions, generation {report.generation}: "
          + ("ok" if report.ok else "problems remain"))


def _rebase(args: argparse.Namespace, settings: Settings, registry: Any) -> int:
    """Build a reference from recent traffic and register it as a new version."""
    from fraudstream.features import build_feature_matrix
    from fraudstream.model_registry.rebase import rebase_reference
    from fraudstream.simulator import read_csv

    if args.rows < 1:
        raise UserError("--rows must be at least 1")
    try:
        ds = read_csv(args.source)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {args.source}: {exc}") from exc
    X = build_feature_matrix(ds.timestamp_s, ds.card_id, ds.merchant_id, ds.amount,
                             ds.is_fraud, delay_days=settings.label_delay_days)[-args.rows:]
    manifest = rebase_reference(registry, args.ref, X, source=str(args.source))
    print(f"registered {manifest.version} (reference from the last {len(X):,} rows of "
          f"{args.source})")
    if args.promote:
        from fraudstream.features import FEATURE_NAMES

        done = registry.promote(manifest.version, "production", FEATURE_NAMES)
        announce(settings, done.alias, done.version, done.generation)
        print(f"production: {done.previous or '(none)'} -> {done.version}")
    return 0
