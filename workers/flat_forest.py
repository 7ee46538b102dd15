"""Tree models evaluated as arrays: the same probabilities, without a GIL handoff per tree.

scikit-learn's ``HistGradientBoostingClassifier.predict_proba`` walks one tree at a time in
compiled code and releases the GIL for each (200 trees in the demo's model). A worker scores a
micro-batch of a few dozen rows in a thread (``workers.model_guard``) while its event loop and
Faust's consumer thread run: each release is a handoff between threads. Measured in a worker at
1,000 tx/s with labels (2026-12-03 (r)): a batch of about 22 rows took the model 9.5 ms on
average, against 1.8 ms alone, and at 200 tx/s the process made about 9,500 futex calls a
second.

``FlatForest`` holds every node of every tree in flat arrays (children of a node side by side)
and walks all trees for all rows together, one tree level per step, in NumPy. The leaf values
are added in tree order starting from the baseline, as scikit-learn adds them, and the link is
the estimator's own, so the probabilities are the same floating-point numbers.

The default family's models (``model_registry.families``: a soft vote of a random forest and a
logistic regression) are scored by scikit-learn tree by tree through joblib, about 8 ms for 1
to 22 rows with 100 trees. ``FlatRandomForest`` walks a forest's trees the same way (rows read
as float32, as scikit-learn's trees read them; class fractions added in tree order, then
divided by the number of trees), and ``SoftVote`` averages its members' probabilities with
``np.average`` and the vote's weights, a member it cannot flatten answering through its own
``predict_proba``.

``verified_flat`` keeps a flat form only when it gives exactly the estimator's probabilities on
probe rows (missing values included); any other model, or an estimator whose internals differ,
keeps scikit-learn's own ``predict_proba``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

#: Up to this many rows a batch goes through the flat arrays; beyond, scikit-learn's per-tree
#: walk is faster. Measured on the demo's model (200 trees of 15 leaves, depth 13), alone:
#: 1 row 0.06 against 1.4 ms, 22 rows 0.42 against 2.0 ms, 100 rows 1.7 against 2.5 ms,
#: 500 rows 9.2 against 5.9 ms.
FLAT_MAX_ROWS = 128

#: One node as read from a fitted tree: (is a leaf, feature, threshold, a missing value goes
#: left, left child, right child, value).
Node = tuple[bool, int, float, bool, int, int, float]


class Probabilities(Protocol):
    """A model's probability of the positive class, row by row."""

    def probabilities(self, rows: np.ndarray) -> np.ndarray: ...


def flat_model(estimator: Any) -> Probabilities | None:
    """The estimator as arrays, or None when no part of it can be (it keeps its own
    ``predict_proba``)."""
    from sklearn.ensemble import VotingClassifier

    if type(estimator) is VotingClassifier:
        return SoftVote.of(estimator)
    return FlatForest.of(estimator) or FlatRandomForest.of(estimator)


def verified_flat(estimator: Any, probe: np.ndarray) -> Probabilities | None:
    """``flat_model(estimator)``, kept only if it gives exactly the estimator's probabilities
    on ``probe`` and on ``probe`` with its missing values made zeros; rows the estimator
    refuses (a logistic regression refuses missing values) it must refuse too."""
    flat = flat_model(estimator)
    if flat is None:
        return None
    for rows in (probe, np.nan_to_num(probe, nan=0.0)):
        try:
            expected = np.asarray(estimator.predict_proba(rows)[:, 1], dtype=np.float64)
        except Exception:
            try:
                flat.probabilities(rows)
            except Exception:
                continue  # refused by both, as it should be
            logger.warning("flat trees not used: they score rows the model refuses")
            return None
        try:
            got = flat.probabilities(rows)
        except Exception as exc:
            logger.warning("flat trees not used: they refuse rows the model scores (%s)", exc)
            return None
        if not np.array_equal(expected, got):
            logger.warning("flat trees differ from the model on probe rows (largest gap "
                           "%.3g): scikit-learn scores every batch",
                           float(np.nanmax(np.abs(expected - got))))
            return None
    return flat


class Trees:
    """Node arrays of several trees, each numbered breadth first so that a node's two children
    are side by side; a leaf is its own child."""

    def __init__(self, trees: Sequence[Callable[[int], Node]]) -> None:
        feature: list[int] = []
        threshold: list[float] = []
        nan_left: list[bool] = []
        first_child: list[int] = []
        value: list[float] = []
        roots: list[int] = []
        depth = 0
        for node_of in trees:
            base = len(feature)
            roots.append(base)
            order = deque([(0, 0)])
            numbered = 1
            while order:
                old, level = order.popleft()
                is_leaf, feat, thr, left_nan, left, right, val = node_of(old)
                depth = max(depth, level)
                if is_leaf:
                    # +inf never compares below it, and NaN goes "left": it stays.
                    feature.append(0)
                    threshold.append(np.inf)
                    nan_left.append(True)
                    first_child.append(len(feature) - 1)
                else:
                    feature.append(feat)
                    threshold.append(thr)
                    nan_left.append(left_nan)
                    first_child.append(base + numbered)
                    numbered += 2
                    order.append((left, level + 1))
                    order.append((right, level + 1))
                value.append(val)
        self.feature = np.asarray(feature, dtype=np.intp)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.nan_left = np.asarray(nan_left, dtype=bool)
        self.first_child = np.asarray(first_child, dtype=np.intp)
        self.value = np.asarray(value, dtype=np.float64)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = depth

    def __len__(self) -> int:
        return len(self.roots)

    def leaf_values(self, x: np.ndarray) -> np.ndarray:
        """(rows x trees): the value of the leaf each row reaches in each tree. A missing value
        goes where the node says, any other value left when it is <= the threshold."""
        n, width = x.shape
        flat_x = x.ravel()
        row_base = np.repeat(np.arange(n, dtype=np.intp) * width, len(self.roots))
        at = np.tile(self.roots, n)
        missing = bool(np.isnan(flat_x).any())
        for _ in range(self.depth):
            seen = flat_x[row_base + self.feature[at]]
            right = seen > self.threshold[at]
            if missing:
                right |= np.isnan(seen) & ~self.nan_left[at]
            at = self.first_child[at] + right
        return self.value[at].reshape(n, len(self.roots))


def _in_order(start: float, values: np.ndarray) -> np.ndarray:
    """``start`` plus each row's values added one after another, left to right: the order
    (and so the rounding) of scikit-learn's ``+=`` per tree."""
    terms = np.empty((values.shape[0], values.shape[1] + 1), dtype=np.float64)
    terms[:, 0] = start
    terms[:, 1:] = values
    return np.add.accumulate(terms, axis=1)[:, -1]


def _rows(rows: np.ndarray, n_features: int) -> np.ndarray:
    x = np.ascontiguousarray(rows, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(f"X has {x.shape[-1] if x.ndim else 0} features, but the model is "
                         f"expecting {n_features} features as input")
    return x


class FlatForest:
    """A binary ``HistGradientBoostingClassifier`` without categorical splits, as arrays."""

    def __init__(self, trees: Trees, baseline: float, n_features: int, link: Any) -> None:
        self.trees = trees
        self.baseline = baseline
        self.n_features = n_features
        self.link = link

    @classmethod
    def of(cls, estimator: Any) -> FlatForest | None:
        """The estimator's trees as arrays, or None for anything but a binary gradient-boosted
        classifier with numerical splits only (those keep scikit-learn's own prediction)."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        if type(estimator) is not HistGradientBoostingClassifier:
            return None
        try:
            predictors = estimator._predictors
            baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel()
            link = estimator._loss.link.inverse
            n_features = int(estimator.n_features_in_)
        except AttributeError:
            return None
        if baseline.size != 1 or any(len(per_iteration) != 1 for per_iteration in predictors):
            return None  # more than two classes: one tree per class and iteration
        nodes = [per_iteration[0].nodes for per_iteration in predictors]
        if not nodes or any(bool(t["is_categorical"].any()) for t in nodes):
            return None

        def reader(tree: np.ndarray) -> Callable[[int], Node]:
            def node_of(i: int) -> Node:
                node = tree[i]
                return (bool(node["is_leaf"]), int(node["feature_idx"]),
                        float(node["num_threshold"]), bool(node["missing_go_to_left"]),
                        int(node["left"]), int(node["right"]), float(node["value"]))
            return node_of

        return cls(Trees([reader(t) for t in nodes]), float(baseline[0]), n_features, link)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """The probability of the positive class for each row."""
        x = _rows(rows, self.n_features)
        raw = _in_order(self.baseline, self.trees.leaf_values(x))
        return np.asarray(self.link(raw), dtype=np.float64)


class FlatRandomForest:
    """A binary ``RandomForestClassifier`` as arrays (its trees' class-1 fractions)."""

    def __init__(self, forest: Any, trees: Trees, n_features: int) -> None:
        self.forest = forest
        self.trees = trees
        self.n_features = n_features

    @classmethod
    def of(cls, estimator: Any) -> FlatRandomForest | None:
        from sklearn.ensemble import RandomForestClassifier

        if type(estimator) is not RandomForestClassifier:
            return None
        try:
            fitted = [e.tree_ for e in estimator.estimators_]
            n_features = int(estimator.n_features_in_)
            binary = estimator.n_outputs_ == 1 and len(estimator.classes_) == 2
        except AttributeError:
            return None
        if not fitted or not binary or any(t.value.shape[1:] != (1, 2) for t in fitted):
            return None

        def reader(tree: Any) -> Callable[[int], Node]:
            left, right = tree.children_left, tree.children_right
            feature, threshold, value = tree.feature, tree.threshold, tree.value
            nan_left = getattr(tree, "missing_go_to_left", None)

            def node_of(i: int) -> Node:
                return (bool(left[i] == -1), int(feature[i]), float(threshold[i]),
                        bool(nan_left[i]) if nan_left is not None else False,
                        int(left[i]), int(right[i]), float(value[i, 0, 1]))
            return node_of

        return cls(estimator, Trees([reader(t) for t in fitted]), n_features)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        x = _rows(rows, self.n_features)
        # scikit-learn's trees read float32, and refuse what float32 cannot hold (and missing
        # values unless the forest learnt them): such rows take its own path and its errors.
        with np.errstate(over="ignore"):
            x32 = x.astype(np.float32)
        if not np.isfinite(x32).all():
            return np.asarray(self.forest.predict_proba(rows)[:, 1], dtype=np.float64)
        # Added in tree order from zero, then divided by the number of trees, as
        # scikit-learn's forest does.
        total = _in_order(0.0, self.trees.leaf_values(x32.astype(np.float64)))
        return np.asarray(total / len(self.trees), dtype=np.float64)


class SoftVote:
    """A binary soft ``VotingClassifier``: its members' probabilities, flat where they can be,
    averaged with its weights."""

    def __init__(self, members: list[Callable[[np.ndarray], np.ndarray]],
                 weights: Any) -> None:
        self.members = members
        self.weights = weights

    @classmethod
    def of(cls, estimator: Any) -> SoftVote | None:
        try:
            fitted = list(estimator.estimators_)
            weights = estimator._weights_not_none
            binary = len(estimator.classes_) == 2 and estimator.voting == "soft"
        except AttributeError:
            return None
        if not binary or not fitted:
            return None
        members: list[Callable[[np.ndarray], np.ndarray]] = []
        flattened = 0
        for member in fitted:
            flat = flat_model(member)
            if flat is None:
                members.append(_own_probabilities(member))
            else:
                members.append(flat.probabilities)
                flattened += 1
        return cls(members, weights) if flattened else None

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        column = np.asarray([member(rows) for member in self.members])
        return np.asarray(np.average(column, axis=0, weights=self.weights), dtype=np.float64)


def _own_probabilities(member: Any) -> Callable[[np.ndarray], np.ndarray]:
    def probabilities(rows: np.ndarray) -> np.ndarray:
        return np.asarray(member.predict_proba(rows)[:, 1], dtype=np.float64)
    return probabilities
