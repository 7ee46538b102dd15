"""Model families: how each estimator is built and which hyperparameters validation may try.

``fraudstream train`` and ``fraudstream backtest`` both build estimators from here, so a family
name means the same model in both. Each family's ``grid`` is small on purpose (training runs on
two shared cores); its first entry is the default the backtest uses unless told otherwise.
Class weights are part of every grid: whether re-weighting the rare fraud class helps is decided
by validation, not by habit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

Params = Mapping[str, Any]


class UnknownFamilyError(ValueError):
    """No model family has this name."""


@dataclass(frozen=True)
class Family:
    """A named estimator recipe and the hyperparameter settings validation chooses among."""

    name: str
    description: str
    build: Callable[[Params], Any]
    grid: tuple[Params, ...]

    @property
    def default_params(self) -> Params:
        return self.grid[0]


def _logreg(p: Params) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(
        max_iter=2000, C=p.get("C", 1.0), class_weight=p.get("class_weight")))


def _hgb(p: Params) -> Any:
    return HistGradientBoostingClassifier(
        max_iter=p.get("max_iter", 300), learning_rate=p.get("learning_rate", 0.05),
        max_leaf_nodes=p.get("max_leaf_nodes", 31), min_samples_leaf=p.get("min_samples_leaf", 50),
        l2_regularization=p.get("l2_regularization", 1.0), class_weight=p.get("class_weight"),
        early_stopping=False, random_state=0)


def _rf(p: Params) -> Any:
    return RandomForestClassifier(
        n_estimators=p.get("n_estimators", 100), max_depth=p.get("max_depth", 20),
        min_samples_leaf=p.get("min_samples_leaf", 1), class_weight=p.get("class_weight"),
        n_jobs=1, random_state=0)


def _blend(p: Params) -> Any:
    # Soft vote: the forest ranks the clear frauds, the linear model keeps an order among the
    # transactions the trees score alike (better AUC, measured in the README's backtests).
    rf = {"min_samples_leaf": p.get("rf_min_samples_leaf", 5),
          "class_weight": p.get("class_weight")}
    return VotingClassifier([("rf", _rf(rf)), ("logreg", _logreg({"C": p.get("C", 1.0)}))],
                            voting="soft", weights=p.get("weights", (1, 1)))


# Each grid's first entry is the setting that did best on four validation backtests (training
# from 2018-06-27, 07-04, 07-11 and 07-18 at the default scale: mean AUC and AP).
FAMILIES: dict[str, Family] = {
    f.name: f for f in (
        Family("hgb", "histogram gradient boosting (scikit-learn)", _hgb, (
            {"learning_rate": 0.05, "max_iter": 200, "max_leaf_nodes": 15,
             "min_samples_leaf": 100},
            {"learning_rate": 0.05, "max_iter": 200, "max_leaf_nodes": 15,
             "min_samples_leaf": 100, "class_weight": "balanced"},
            {"learning_rate": 0.05, "max_iter": 300, "max_leaf_nodes": 31},
        )),
        Family("logreg", "logistic regression on standardised features", _logreg, (
            {"C": 1.0},
            {"C": 1.0, "class_weight": "balanced"},
            {"C": 0.1},
        )),
        Family("rf", "random forest, 100 trees", _rf, (
            {"n_estimators": 100, "max_depth": 20, "min_samples_leaf": 5},
            {"n_estimators": 100, "max_depth": 20, "min_samples_leaf": 1},
            {"n_estimators": 100, "max_depth": 20, "min_samples_leaf": 5,
             "class_weight": "balanced_subsample"},
        )),
        Family("blend", "soft vote of the random forest and logistic regression", _blend, (
            {"rf_min_samples_leaf": 5},
            {"rf_min_samples_leaf": 5, "weights": (2, 1)},
            {"rf_min_samples_leaf": 1},
        )),
    )
}

#: The default family: with `rf`, the best mean AUC and AP on the README's four held-out splits.
DEFAULT_FAMILY = "blend"


def family(name: str) -> Family:
    """The family called ``name``, or a one-line error listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownFamilyError(
            f"unknown model family {name!r}; choose from {', '.join(sorted(FAMILIES))}") from None


def build(name: str, params: Params | None = None) -> Any:
    """A fresh, unfitted estimator of family ``name`` (its default parameters unless given)."""
    fam = family(name)
    return fam.build(fam.default_params if params is None else params)
