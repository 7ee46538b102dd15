"""A training report: Markdown with PNG plots of the newest validation fold.

ROC and precision-recall curves, the confusion matrices at the review and decline thresholds,
score distributions by class, permutation feature importance (drop in average precision when a
feature is shuffled), and the table of every hyperparameter setting the search tried.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from fraudstream.features import FEATURE_NAMES

if TYPE_CHECKING:
    from fraudstream.model_registry.training import TrainedModel


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path.name


def write_report(trained: TrainedModel, out_dir: Path,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Write ``report.md`` and its PNGs to ``out_dir``; returns the Markdown file."""
    from sklearn.inspection import permutation_importance

    say = progress or (lambda _msg: None)
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    m = trained.manifest
    v = trained.validation
    y, scores, X = v["y"], v["scores"], v["X"]

    fig, ax = plt.subplots(figsize=(5, 4))
    fpr, tpr, _ = roc_curve(y, scores)
    ax.plot(fpr, tpr, label=f"AUC {m.metrics['val_auc_roc']:.3f} (newest fold)")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    roc = _save(fig, out_dir / "roc.png")

    fig, ax = plt.subplots(figsize=(5, 4))
    precision, recall, _ = precision_recall_curve(y, scores)
    ax.plot(recall, precision)
    for name, t in (("review", m.review_threshold), ("decline", m.decline_threshold)):
        pred = scores >= t
        ax.scatter([pred[y == 1].mean()], [y[pred].mean() if pred.any() else 0], label=name)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend()
    pr = _save(fig, out_dir / "precision_recall.png")

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    matrices = {}
    for ax, (name, t) in zip(axes, (("review", m.review_threshold),
                                    ("decline", m.decline_threshold)), strict=True):
        cm = confusion_matrix(y, scores >= t, labels=[0, 1])
        matrices[name] = cm
        ax.imshow(cm, cmap="Blues")
        for (i, j), n in np.ndenumerate(cm):
            ax.text(j, i, f"{n:,}", ha="center", va="center",
                    color="white" if n > cm.max() / 2 else "black")
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["pass", "flag"],
               yticklabels=["genuine", "fraud"], title=f"{name} >= {t:.3f}")
    confusion = _save(fig, out_dir / "confusion.png")

    fig, ax = plt.subplots(figsize=(5, 4))
    bins = np.linspace(0, 1, 41)
    ax.hist(scores[y == 0], bins=bins, alpha=0.6, density=True, label="genuine", log=True)
    ax.hist(scores[y == 1], bins=bins, alpha=0.6, density=True, label="fraud", log=True)
    ax.set(xlabel="score", ylabel="density (log)", title="Score distributions")
    ax.legend()
    dist = _save(fig, out_dir / "scores.png")

    say("permutation feature importance")
    imp = permutation_importance(trained.estimator, X, y, scoring="average_precision",
                                 n_repeats=3, random_state=0, n_jobs=1)
    order = np.argsort(imp.importances_mean)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh([FEATURE_NAMES[i] for i in order], imp.importances_mean[order],
            xerr=imp.importances_std[order])
    ax.set(xlabel="drop in average precision when shuffled", title="Feature importance")
    importance = _save(fig, out_dir / "importance.png")

    lines = [f"# Model {m.version}", "",
             f"Family `{m.family}`, trained {m.created_at}, "
             f"{int(m.metrics['train_rows']):,} training rows; validated on the newest "
             f"time-ordered fold ({int(m.metrics['val_rows']):,} transactions, "
             f"{int(y.sum()):,} frauds; the plots).", "",
             *_estimate_lines(m.metrics)]
    lines += ["", f"Thresholds: review >= {m.review_threshold:.4f}, decline >= "
              f"{m.decline_threshold:.4f}.", ""]
    for name, cm in matrices.items():
        tn, fp, fn, tp = cm.ravel()
        lines.append(f"- at {name}: {tp:,} frauds flagged, {fn:,} missed, {fp:,} genuine "
                     f"flagged, {tn:,} genuine passed")
    lines += ["", "## Search", "", "| params | AUC | AP | CP@100 |", "|---|---|---|---|"]
    lines += [f"| `{s['params']}` | {s['auc_roc']:.4f} | {s['average_precision']:.4f} | "
              f"{s['card_precision_at_100']:.4f} |" for s in trained.search]
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({file})" for name, file in (
        ("ROC", roc), ("precision-recall", pr), ("confusion matrices", confusion),
        ("score distributions", dist), ("feature importance", importance))]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _estimate_lines(metrics: dict[str, float]) -> list[str]:
    """The validation table: the newest fold, and the mean the setting was chosen by."""
    keys = ("auc_roc", "average_precision", "card_precision_at_100")
    folds = int(metrics.get("selection_folds", 0))
    settings = int(metrics.get("search_settings", 1))
    if folds == 0:  # a manifest from before the held-out fold
        header = ""
    elif settings > 1:
        header = (f" mean of the {folds} older fold(s) that chose among {settings} settings "
                  "(optimistic) |")
    else:
        header = f" mean of all {folds} fold(s) (one setting, no search) |"
    lines = ["| metric | newest fold (the estimate) |" + header,
             "|---|---|" + ("---|" if header else "")]
    for k in keys:
        row = f"| {k} | {metrics[f'val_{k}']:.4f} |"
        if header:
            row += f" {metrics[f'selection_{k}']:.4f} |"
        lines.append(row)
    return lines
