"""The metrics a competition is scored by: a registry of frozen entries, scikit-learn doing the arithmetic.

Validation, early stopping, cross-validation, `flow runs`, `flow score` and the ledger all read a
competition's metric from here, by the name its TOML gives. scikit-learn is imported by the metric
that is computed, so a command that never scores does not load it.

Every metric is called the same way, on the true labels and the predicted probabilities:

    >>> METRICS["macro_f1"](y_true, probs)        # probs: [n, num_classes]; label metrics take the arg-max
    >>> METRICS["mean_f2"](y_multi_hot, probs, thresholds)   # multi-label: 0/1 [n, k] true sets
    >>> METRICS["logloss"].better(0.21, 0.35)     # True: log loss is lower is better
    >>> METRICS["map@3"].worst                    # -inf: the "no score yet" every score beats

The best epoch of a run (`best_of`, `Best.after`): the metric first; a difference smaller than the
validation set can show (`metric.tie(n)`: one image's worth, 1/n, for every metric but log loss,
which is continuous) is a tie, and a tie goes to the lower validation loss. A small validation set
on an easy task saturates early (AUC 1.0 from epoch 2 on) while the loss keeps falling: the later,
surer model is kept.

A metric scores either hard labels (`scores == "labels"`: accuracy, F1, kappa, ...) or class
probabilities (`scores == "probabilities"`: log loss, ROC AUC, MAP@K, which ranks the classes).
`metric.of_labels(y_true, y_pred, num_classes)` scores predicted class indices; a probability
metric refuses them in one line. `map@K` takes any K >= 1 (map@3, map@5, ...).

Multi-label (target "multi", `Metric.targets`): y_true is the multi-hot [n, k] of
`TARGETS["multi"].encode`; a label metric scores the sets `TARGETS["multi"].decide(probs, thresholds)`
(0.5 a class when thresholds is None), and `of_labels` takes those 0/1 sets. `mean_f2` / `mean_f1`
score each image's predicted set against its true set and average over images (Planet, iMet;
Plant Pathology 2021); an image with neither true nor predicted labels scores 0, as in Kaggle's
sample implementation of the Mean F Score and scikit-learn's fbeta_score(average="samples",
zero_division=0). `micro_f1` pools every (image, class) decision; `macro_f1` averages the F1 of
the classes present in the true or the predicted sets (as for one label an image); `mean_auc` averages
the ROC AUC of the classes that have both positive and negative images. Tie: one image's worth.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np

from kaggle_flow.errors import DataError, FlowError, NotFoundError
from kaggle_flow.registry import Registry
from kaggle_flow.setscores import FScore, Sweep
from kaggle_flow.target import TARGETS

LOGLOSS_EPS = 1e-15
"""Log loss clips probabilities to [eps, 1 - eps] (then renormalizes each row), the eps of
scikit-learn's log_loss before 1.5: one confident wrong answer costs -log(1e-15) ~ 34.5, not
infinity. Submissions scored by log loss are written clipped by the same eps."""

Scores = Literal["labels", "probabilities"]  # what a metric scores: the arg-max class, or the probabilities
MultiScore = Callable[[np.ndarray, np.ndarray], float]
"""A multi-label score: (multi-hot y_true [n, k], 0/1 sets or probabilities [n, k]) -> float."""


def one_image(n: int) -> float:
    """What one image of n can change a score of counted images or ranks by: 1/n."""
    return 1.0 / max(n, 1)


def continuous(n: int) -> float:
    """A continuous score (log loss): only an equal one is a tie."""
    return 0.0


@dataclass(frozen=True)
class Metric:
    """A score of predictions against true labels, with the direction that makes it better.

    `fn(y_true, pred, num_classes)` scores one class an image: class indices as `pred` when
    `scores == "labels"`, the [n, num_classes] probabilities when `scores == "probabilities"`;
    `multi(y_true, pred)` scores sets (multi-hot y_true; 0/1 sets or probabilities as `pred`).
    `targets` names the forms it has a function for.
    """

    name: str
    description: str
    fn: Callable[[np.ndarray, np.ndarray, int], float] | None
    scores: Scores = "labels"
    higher_is_better: bool = True
    k: int | None = None  # map@K: how many ranked classes of a row count
    targets: tuple[str, ...] = ("single",)  # the kaggle_flow.target names it scores
    tie: Callable[[int], float] = field(default=one_image, compare=False)
    """Score differences below tie(n) are ties on n validation images: one image's worth (1/n) for
    a score of counted images or ranks; 0 for a continuous one (log loss)."""
    multi: MultiScore | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if ("single" in self.targets) != (self.fn is not None) or ("multi" in self.targets) != (self.multi is not None):
            raise ValueError(f"metric '{self.name}': targets {self.targets} and its functions disagree")

    def __call__(self, y_true: np.ndarray, probs: np.ndarray, thresholds: np.ndarray | None = None) -> float:
        """The score of [n, num_classes] probabilities (`of_labels` scores answers). Multi-hot y_true
        [n, k]: the sets decided at `thresholds` (0.5 a class when None) for a label metric."""
        probs = np.asarray(probs)
        if _is_sets(y_true, probs):
            pred = probs.astype(np.float64) if self.scores == "probabilities" else TARGETS["multi"].decide(probs, thresholds)
            return self._of_sets(np.asarray(y_true), pred)
        y_true = self._indices(y_true)
        if probs.ndim != 2 or len(probs) != len(y_true):
            raise FlowError(f"metric '{self.name}': probabilities of shape {probs.shape} for {len(y_true)} labels")
        assert self.fn is not None
        if self.scores == "labels":
            return float(self.fn(y_true, probs.argmax(axis=1), probs.shape[1]))
        return float(self.fn(y_true, probs.astype(np.float64), probs.shape[1]))

    def of_labels(self, y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
        """The score of answers: predicted class indices, or 0/1 sets [n, k] against multi-hot y_true;
        a one-line error for a metric of probabilities."""
        if self.scores != "labels":
            raise FlowError(needs_probabilities(self.name))
        y_pred = np.asarray(y_pred)
        if _is_sets(y_true, y_pred):
            return self._of_sets(np.asarray(y_true), y_pred)
        assert self.fn is not None
        return float(self.fn(self._indices(y_true), _class_indices(y_pred), num_classes))

    def sweep(self, y_true: np.ndarray, sets: np.ndarray) -> Sweep:
        """The 0/1 `sets` [n, k] against multi-hot y_true, to score one class column replaced by candidate
        columns at a time (fitting thresholds: thresholds.py)."""
        if not isinstance(self.multi, FScore):
            raise FlowError(f"metric '{self.name}' scores no label sets at a threshold: nothing to fit")
        return Sweep(np.asarray(y_true).astype(bool), np.asarray(sets).astype(bool), self.multi)

    def _indices(self, y_true: np.ndarray) -> np.ndarray:
        if self.fn is None:
            raise FlowError(f"metric '{self.name}' scores sets of labels (multi-hot [n, k]), not one class an image")
        return _class_indices(y_true)

    def _of_sets(self, y_true: np.ndarray, pred: np.ndarray) -> float:
        if self.multi is None:
            raise FlowError(f"metric '{self.name}' scores one class an image, not sets of labels")
        return float(self.multi(y_true.astype(np.uint8), pred))

    def better(self, a: float, b: float) -> bool:
        """Whether score `a` beats score `b` under the metric's direction (ties do not)."""
        return a > b if self.higher_is_better else a < b

    def key(self, score: float) -> float:
        """`score` oriented so that a larger key is better: for max() and sorted() over runs."""
        return score if self.higher_is_better else -score

    @property
    def worst(self) -> float:
        """A value every score beats: -inf, or +inf when lower is better (for "no score yet")."""
        return -math.inf if self.higher_is_better else math.inf


def needs_probabilities(name: str) -> str:
    return f"metric '{name}' scores class probabilities, not labels"


def _is_sets(y_true: np.ndarray, pred: np.ndarray) -> bool:
    """Whether y_true is multi-hot [n, k] beside [n, k] predictions (one class an image: [n])."""
    y = np.asarray(y_true)
    return y.ndim == 2 and y.shape[1] > 1 and y.shape == np.asarray(pred).shape


def _class_indices(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=int).reshape(-1)


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    from sklearn.metrics import accuracy_score

    return accuracy_score(y_true, y_pred)


def _micro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    from sklearn.metrics import f1_score

    return f1_score(y_true, y_pred, average="micro", zero_division=0)


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


def clip_probabilities(probs: np.ndarray, eps: float = LOGLOSS_EPS) -> np.ndarray:
    """Rows scaled to sum to 1, clipped to [eps, 1 - eps] and renormalized (what log loss scores)."""
    probs = np.asarray(probs, dtype=np.float64)
    clipped = np.clip(probs / probs.sum(axis=1, keepdims=True), eps, 1 - eps)
    return clipped / clipped.sum(axis=1, keepdims=True)


def _logloss(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    from sklearn.metrics import log_loss

    return log_loss(y_true, clip_probabilities(probs), labels=list(range(k)))


def _auc(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    from sklearn.metrics import roc_auc_score

    if k != 2:
        raise FlowError(f"metric 'auc' scores two classes (got {k}); mean_auc scores each class against the rest")
    if len(np.unique(y_true)) < 2:
        raise DataError("metric 'auc': the true labels hold one class only, so ROC AUC is undefined")
    return roc_auc_score(y_true, probs[:, 1])


def _mean_auc(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """ROC AUC of each class against the rest, averaged over the classes; a class that is never
    (or always) true has no ROC AUC, so it is left out of the average."""
    from sklearn.metrics import roc_auc_score

    scored = [c for c in range(k) if 0 < int((y_true == c).sum()) < len(y_true)]
    if not scored:
        raise DataError("metric 'mean_auc': the true labels hold one class only, so ROC AUC is undefined")
    return float(np.mean([roc_auc_score(y_true == c, probs[:, c]) for c in scored]))


def _mean_auc_of_sets(y_true: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC of each class, averaged over the classes with both positive and negative images."""
    from sklearn.metrics import roc_auc_score

    positives = y_true.sum(axis=0)
    scored = np.flatnonzero((positives > 0) & (positives < len(y_true)))
    if not len(scored):
        raise DataError("metric 'mean_auc': no class has both positive and negative images, so ROC AUC is undefined")
    return float(np.mean([roc_auc_score(y_true[:, c], probs[:, c]) for c in scored]))


def ranked_classes(probs: np.ndarray, k: int) -> np.ndarray:
    """[n, min(k, num_classes)]: each row's classes by falling probability (ties: the lower index first)."""
    order = np.argsort(-np.asarray(probs, dtype=np.float64), axis=1, kind="stable")
    return order[:, :k]


def mean_average_precision(y_true: np.ndarray, ranked: np.ndarray, k: int) -> float:
    """MAP@k of one true class per row: 1/rank of the true class among the first k guesses, else 0.

    `ranked` is [n, m] class indices best first; -1 pads a row with fewer guesses. A class guessed
    twice counts at its first place only (Kaggle's apk).
    """
    y_true = np.asarray(y_true, dtype=int).reshape(-1, 1)
    if len(y_true) == 0:
        return 0.0
    hits = np.asarray(ranked, dtype=int).reshape(len(y_true), -1)[:, :k] == y_true
    return float(np.where(hits.any(axis=1), 1.0 / (hits.argmax(axis=1) + 1), 0.0).mean())


@lru_cache(maxsize=None)
def map_at(k: int) -> Metric:
    """The MAP@k metric (one object per k: `METRICS["map@3"] is METRICS["map@3"]`)."""

    def fn(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> float:
        return mean_average_precision(y_true, ranked_classes(probs, k), k)

    return Metric(
        f"map@{k}", f"mean average precision of the top {k} classes: 1/rank of the true class, 0 past {k}",
        fn, "probabilities", k=k,
    )


MAP_NAME = re.compile(r"map@([1-9][0-9]*)")


class MetricRegistry(Registry[Metric]):
    """The metric registry: its entries, and `map@K` for any K >= 1 (map@5 is listed as the example)."""

    def __getitem__(self, name: str) -> Metric:
        found = MAP_NAME.fullmatch(name) if isinstance(name, str) else None
        if found:
            return map_at(int(found.group(1)))
        if name not in self._entries:
            raise NotFoundError(f"unknown metric '{name}' (valid: {', '.join(valid_names(self))})")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or (isinstance(name, str) and MAP_NAME.fullmatch(name) is not None)

    def get(self, name: str, default: Metric | None = None) -> Metric | None:  # type: ignore[override]
        return self[name] if name in self else default


def valid_names(names: Iterable[str]) -> Iterator[str]:
    """The metric names to show a user: map@K once, for every map@ entry."""
    yield from (n for n in names if not MAP_NAME.fullmatch(n))
    yield "map@K"


METRICS: MetricRegistry = MetricRegistry("metric", (
    Metric("accuracy", "share of images whose class is right", _accuracy),
    Metric("micro_f1", "F1 over all images pooled (equals accuracy for one label per image; multi-label: "
           "every image-class decision pooled)", _micro_f1, targets=("single", "multi"), multi=FScore(1.0, "micro")),
    Metric("macro_f1", "F1 per class, averaged with equal weight per class", _macro_f1,
           targets=("single", "multi"), multi=FScore(1.0, "macro")),
    Metric("balanced_accuracy", "recall per class, averaged with equal weight per class", _balanced_accuracy),
    Metric("kappa", "quadratic-weighted Cohen's kappa: agreement on ordered grades, 1 = perfect", _kappa),
    Metric("logloss", "mean negative log probability of the true class (clipped by LOGLOSS_EPS); lower is better",
           _logloss, "probabilities", higher_is_better=False, tie=continuous),
    Metric("auc", "ROC AUC of the positive (second) class; two classes", _auc, "probabilities"),
    Metric("mean_auc", "ROC AUC of each class against the rest, averaged over the classes", _mean_auc, "probabilities",
           targets=("single", "multi"), multi=_mean_auc_of_sets),
    map_at(5),
    Metric("mean_f2", "multi-label: F2 of each image's predicted set against its true set, averaged over images",
           None, targets=("multi",), multi=FScore(2.0, "samples")),
    Metric("mean_f1", "multi-label: F1 of each image's predicted set against its true set, averaged over images",
           None, targets=("multi",), multi=FScore(1.0, "samples")),
))


@dataclass(frozen=True)
class Best:
    """The best epoch so far and why: its score and validation loss, and the epoch that score was
    first reached (`tied_from`, earlier than `epoch` when a tie went to a lower loss)."""

    epoch: int = 0
    score: float = math.nan
    loss: float = math.inf
    tied_from: int = 0

    def after(self, epoch: int, score: float, loss: float, metric: Metric, n_val: int) -> Best | None:
        """The new best when `epoch` beats this one; None when it does not.

        The metric decides when the difference is at least `metric.tie(n_val)`; a smaller one (a
        tie) goes to the lower validation loss, the score's first epoch kept for the reason line.
        """
        if self.epoch == 0 or not math.isfinite(self.score):
            return Best(epoch, score, loss, epoch)
        delta = abs(score - self.score)
        if delta > 0 and delta >= metric.tie(n_val) * (1 - 1e-9):  # k/n - j/n in floats can fall a hair short of 1/n
            return Best(epoch, score, loss, epoch) if metric.better(score, self.score) else None
        return Best(epoch, score, loss, self.tied_from) if loss < self.loss else None

    def reason(self, metric: str) -> str:
        """'epoch 47: auc 1.0000 tied from epoch 2, lowest val loss 0.0450', or 'epoch 5: best accuracy 0.9870'."""
        if self.tied_from and self.tied_from != self.epoch:
            return (f"epoch {self.epoch}: {metric} {self.score:.4f} tied from epoch {self.tied_from}, "
                    f"lowest val loss {self.loss:.4f}")
        return f"epoch {self.epoch}: best {metric} {self.score:.4f}"


def best_of(history: Iterable[tuple[int, float, float]], metric: Metric, n_val: int) -> Best:
    """The best of (epoch, score, val loss) rows, as training keeps it epoch by epoch."""
    best = Best()
    for epoch, score, loss in history:
        best = best.after(epoch, score, loss, metric, n_val) or best
    return best


def known_metric(name: str) -> str:
    """`name` when it is a metric of the registry; a ValueError naming the valid ones (for pydantic)."""
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}' (valid: {', '.join(valid_names(METRICS))})")
    return name
