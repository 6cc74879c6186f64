"""What a label is: one class an image, or a set of classes an image. Owned here, asked everywhere.

A competition's `target` (its TOML's top-level key, "single" by default) picks the entry of
`TARGETS`; reading, training, prediction, metrics, split and balance ask it instead of assuming
one label an image:

    target = TARGETS[comp.target]
    target.column                       "label" (single) or "labels" (multi): the canonical table's column
    y = target.encode(table, k)         single: int64 [n] class indices; multi: uint8 [n, k] multi-hot
    target.activation                   "softmax" (rows sum to 1) or "sigmoid" (each class on its own)
    target.image_losses(y, p)           each image's cross entropy / binary cross entropy over the classes
    target.val_loss(y, p)               their mean, as validation reports it
    target.decide(p, thresholds)        single: arg-max [n]; multi: 0/1 [n, k], each class at its threshold
    target.format(row) / parse(text)    a label as one cell of oof.csv and pseudo.csv: "3", or "0 3 16"
    target.dtype                        the canonical table's dtype of its column: "Int64" or "string"
    target.describe(cell, names)        a table cell as names for reports: "rust", or "rust scab"

Training asks it too (paddle tensors; paddle is imported inside those methods, so this module stays
importable where paddle must not load): `item_labels` (what the loader gives an item),
`batch_targets` (float [N, K] targets of a batch), `smooth` (label smoothing), `activate` (the
head's activation), `hits` (what training accuracy counts), and the loss names it takes (`losses`,
`default_loss`; engine/optim.py's LOSSES).

The canonical table (table/layouts.py) of a single-label competition holds `label` (Int64 class
index, <NA> for test rows); of a multi-label one `labels` (str: the class indices of the image,
ascending and space-separated, "" for an image with none, <NA> for test rows). The column's name
differs on purpose: code that reads `label` from a multi-label table fails at once, where it would
otherwise treat a set of classes as one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import pandas as pd

from kaggle_flow.errors import DataError
from kaggle_flow.registry import Registry

if TYPE_CHECKING:
    import paddle

TargetName = Literal["single", "multi"]
THRESHOLD = 0.5  # a class is predicted for an image at or above it, until thresholds are fitted
LOSS_EPS = 1e-12  # probabilities are clipped to [eps, 1 - eps] before a log in val_loss
NO_CLASS = "(none)"  # how reports name the empty label set of a multi-label image


class Target(ABC):
    """The form of a label. `encode` reads the table, `decide` turns probabilities into answers."""

    name: ClassVar[str]
    column: ClassVar[str]
    activation: ClassVar[Literal["softmax", "sigmoid"]]
    description: ClassVar[str]
    dtype: ClassVar[str]  # the pandas dtype of `column` in the canonical table (<NA> for test rows)
    several: ClassVar[bool]  # an image may hold several classes: eda counts labels per image and co-occurrences
    losses: ClassVar[tuple[str, ...]]  # the names of engine/optim.py's LOSSES it trains with
    default_loss: ClassVar[str]  # where neither the TOML nor --loss names one
    accuracy: ClassVar[str]  # what train_acc / val_acc count, as the epoch line names it
    thresholded: ClassVar[bool]  # its decisions take per-class thresholds, fitted after training (thresholds.json)

    @abstractmethod
    def encode(self, table: pd.DataFrame, num_classes: int) -> np.ndarray:
        """The labelled rows' labels as arrays (rows of `table` without a label are an error)."""

    @abstractmethod
    def one_hot(self, y: np.ndarray, num_classes: int) -> np.ndarray:
        """float32 [n, k] targets of encoded labels: one 1 a row (single), the multi-hot rows (multi)."""

    @abstractmethod
    def image_losses(self, y: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """float [n]: each image's loss against its encoded label (`flow review`'s top losses)."""

    def val_loss(self, y: np.ndarray, probs: np.ndarray) -> float:
        """The mean loss of the probabilities against encoded labels, as validation reports it."""
        return float(self.image_losses(y, probs).mean())

    @abstractmethod
    def chance_loss(self, num_classes: int) -> float:
        """The loss of a model that knows nothing (every class equally likely): what a blown-up run is measured by."""

    @abstractmethod
    def decide(self, probs: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
        """The answers: class indices [n] (single) or 0/1 [n, k] (multi)."""

    @abstractmethod
    def format(self, row: np.ndarray | int) -> str:
        """One encoded label (or answer) as a cell: "3", or "0 3 16" ("" for no class)."""

    @abstractmethod
    def parse(self, text: object, num_classes: int, where: str) -> np.ndarray | int:
        """A cell written by `format` back into an encoded label; a DataError naming `where` otherwise."""

    def counts(self, y: np.ndarray, num_classes: int) -> np.ndarray:
        """Images per class: the histogram of eda, split and balance."""
        return self.one_hot(y, num_classes).sum(axis=0).astype(np.int64)

    def describe(self, cell: object, names: Sequence[str] | None = None) -> str:
        """A label cell of the canonical table as its class names (indices without `names`), for reports."""
        indices = [int(t) for t in str(cell).split()]
        return " ".join(names[i] if names else str(i) for i in indices) or NO_CLASS

    @abstractmethod
    def item_labels(self, rows: pd.DataFrame, num_classes: int) -> np.ndarray:
        """What the loader gives each row beside its image: the encoded label, and for a row without
        one (a test row, a table without the column) -1 (single) or a row of zeros (multi)."""

    @abstractmethod
    def batch_targets(self, labels: paddle.Tensor, num_classes: int) -> paddle.Tensor:
        """float32 [N, K] targets of a batch of item labels (or of soft targets [N, K], `--pseudo-soft`)."""

    @abstractmethod
    def smooth(self, targets: paddle.Tensor, epsilon: float) -> paddle.Tensor:
        """Label smoothing of float targets [N, K]."""

    @abstractmethod
    def activate(self, logits: paddle.Tensor) -> paddle.Tensor:
        """The head's activation of float32 logits [N, K]: the probabilities, on the device."""

    @abstractmethod
    def hits(self, logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
        """float32 scalar: the batch's images counted right (a fraction of each image for a per-label accuracy)."""

    def wrong_loss(self, loss: str) -> str:
        """The one line for a loss name this target does not train with ("" when it does)."""
        if loss in self.losses:
            return ""
        return f"--loss {loss} is not a loss for {self.name}-label competitions (target = \"{self.name}\"): use {', '.join(self.losses)}"


def _index(text: str, num_classes: int, where: str) -> int:
    if not text.isdigit() or int(text) >= num_classes:
        raise DataError(f"{where}: {text!r} is not a class index 0-{num_classes - 1}")
    return int(text)


class Single(Target):
    name, column, activation, dtype, several = "single", "label", "softmax", "Int64", False
    description = "one class an image: a softmax head, cross entropy, the arg-max class"
    losses, default_loss, accuracy, thresholded = ("ce", "weighted", "focal"), "ce", "acc", False

    def encode(self, table: pd.DataFrame, num_classes: int) -> np.ndarray:
        labels = pd.array(table[self.column], dtype="Int64")
        if labels.isna().any():
            raise DataError(f"table: {int(labels.isna().sum())} labelled rows without a label")
        return labels.to_numpy(dtype=np.int64)

    def one_hot(self, y: np.ndarray, num_classes: int) -> np.ndarray:
        return np.eye(num_classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]

    def chance_loss(self, num_classes: int) -> float:
        return math.log(max(num_classes, 2))  # cross entropy of 1/K

    def image_losses(self, y: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Cross entropy: -ln of the probability of the true class."""
        y = np.asarray(y, dtype=np.int64)
        return -np.log(np.clip(np.asarray(probs, dtype=np.float64)[np.arange(len(y)), y], LOSS_EPS, None))

    def decide(self, probs: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(probs).argmax(axis=1)

    def format(self, row: np.ndarray | int) -> str:
        return str(int(row))

    def parse(self, text: object, num_classes: int, where: str) -> int:
        return _index(str(text).strip(), num_classes, where)

    def item_labels(self, rows: pd.DataFrame, num_classes: int) -> np.ndarray:
        labels = rows[self.column] if self.column in rows else pd.Series([-1] * len(rows))
        return pd.array(labels, dtype="Int64").fillna(-1).to_numpy(dtype=np.int64)

    def batch_targets(self, labels: paddle.Tensor, num_classes: int) -> paddle.Tensor:
        import paddle  # heavy: training only
        import paddle.nn.functional as F

        if labels.ndim == 2 and labels.shape[1] == num_classes and labels.dtype in (paddle.float32, paddle.float64):
            return labels.astype("float32")  # soft targets, as the loader gave them
        if labels.dtype != paddle.int64 or labels.ndim != 1:  # the loader gives int64 [N]; other loaders may not
            labels = labels.astype("int64").reshape([-1])
        return F.one_hot(labels, num_classes)

    def smooth(self, targets: paddle.Tensor, epsilon: float) -> paddle.Tensor:
        import paddle.nn.functional as F  # heavy: training only

        return F.label_smooth(targets, epsilon=epsilon)  # q (1 - eps) + eps / K

    def activate(self, logits: paddle.Tensor) -> paddle.Tensor:
        import paddle.nn.functional as F  # heavy: prediction only

        return F.softmax(logits, axis=1)

    def hits(self, logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
        return (logits.argmax(axis=1) == targets.argmax(axis=1)).astype("float32").sum()


class Multi(Target):
    name, column, activation, dtype, several = "multi", "labels", "sigmoid", "string", True
    description = "a set of classes an image: a sigmoid head, binary cross entropy, a threshold a class"
    losses, default_loss, accuracy, thresholded = ("bce", "focal", "asl"), "bce", "label_acc", True

    def encode(self, table: pd.DataFrame, num_classes: int) -> np.ndarray:
        cells = table[self.column]
        if cells.isna().any():
            raise DataError(f"table: {int(cells.isna().sum())} labelled rows without labels")
        out = np.zeros((len(cells), num_classes), dtype=np.uint8)
        for i, cell in enumerate(cells):
            out[i] = self.parse(cell, num_classes, f"table row {i + 1}")
        return out

    def one_hot(self, y: np.ndarray, num_classes: int) -> np.ndarray:
        return np.asarray(y, dtype=np.float32).reshape(-1, num_classes)

    def chance_loss(self, num_classes: int) -> float:
        return math.log(2)  # each class's binary cross entropy of 1/2, averaged over the classes

    def image_losses(self, y: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Binary cross entropy averaged over the classes (so their mean is paddle's BCE of the batch)."""
        p = np.clip(np.asarray(probs, dtype=np.float64), LOSS_EPS, 1 - LOSS_EPS)
        y = np.asarray(y, dtype=np.float64)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)

    def decide(self, probs: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
        cut = THRESHOLD if thresholds is None else np.asarray(thresholds, dtype=np.float64).reshape(1, -1)
        return (np.asarray(probs) >= cut).astype(np.uint8)

    def format(self, row: np.ndarray | int) -> str:
        return " ".join(str(j) for j in np.flatnonzero(np.asarray(row)))

    def parse(self, text: object, num_classes: int, where: str) -> np.ndarray:
        row = np.zeros(num_classes, dtype=np.uint8)
        for token in str(text).split():
            row[_index(token, num_classes, where)] = 1
        return row

    def item_labels(self, rows: pd.DataFrame, num_classes: int) -> np.ndarray:
        out = np.zeros((len(rows), num_classes), dtype=np.float32)
        if self.column in rows:
            known = rows[self.column].notna().to_numpy()
            out[known] = self.encode(rows[known], num_classes)
        return out

    def batch_targets(self, labels: paddle.Tensor, num_classes: int) -> paddle.Tensor:
        return labels.astype("float32").reshape([-1, num_classes])

    def smooth(self, targets: paddle.Tensor, epsilon: float) -> paddle.Tensor:
        return targets * (1.0 - epsilon) + epsilon / 2.0  # each class is a two-way choice of its own

    def activate(self, logits: paddle.Tensor) -> paddle.Tensor:
        import paddle.nn.functional as F  # heavy: prediction only

        return F.sigmoid(logits)

    def hits(self, logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
        """Per-label accuracy: each image counts the share of its classes decided right at 0.5 (logit 0)."""
        return ((logits >= 0) == (targets >= THRESHOLD)).astype("float32").mean(axis=1).sum()


TARGETS: Registry[Target] = Registry("target", [Single(), Multi()])
