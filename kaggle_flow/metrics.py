"""The metrics a competition is scored by: a registry of frozen entries, scikit-learn doing the arithmetic.

Validation, early stopping, cross-validation, `flow runs`, `flow score` and the ledger all read a
competition's metric from here, by the name its TOML gives. scikit-learn is imported by the metric
that is computed, so a command that never scores does not load it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kaggle_flow.registry import Registry


@dataclass(frozen=True)
class Metric:
    """A score of predicted against true class indices; higher is better for all of them."""

    name: str
    description: str
    fn: Callable[[np.ndarray, np.ndarray, int], float]

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
        return float(self.fn(np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int), num_classes))


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    from sklearn.metrics import accuracy_score

    return accuracy_score(y_true, y_pred)


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    from sklearn.metrics import f1_score

    present = np.union1d(y_true, y_pred)  # classes absent from both would add a meaningless 0
    return f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        return balanced_accuracy_score(y_true, y_pred)


def _kappa(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    from sklearn.metrics import cohen_kappa_score

    if len(np.union1d(y_true, y_pred)) < 2:
        return 1.0  # one class everywhere: perfect agreement (sklearn would give nan)
    return cohen_kappa_score(y_true, y_pred, labels=list(range(k)), weights="quadratic")


METRICS: Registry[Metric] = Registry("metric", (
    Metric("accuracy", "share of images whose class is right", _accuracy),
    Metric("macro_f1", "F1 per class, averaged with equal weight per class", _macro_f1),
    Metric("balanced_accuracy", "recall per class, averaged with equal weight per class", _balanced_accuracy),
    Metric("kappa", "quadratic-weighted Cohen's kappa: agreement on ordered grades, 1 = perfect", _kappa),
))


def known_metric(name: str) -> str:
    """`name` when it is a metric of the registry; a ValueError naming the valid ones (for pydantic)."""
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}' (valid: {', '.join(METRICS)})")
    return name
