"""Folds of a multi-label table: iterative stratification, which keeps each class's share of the images
in every fold where there is no one label an image to stratify by.

The `iterative-stratification` package (Sechidis et al., 2011) does it: MultilabelStratifiedKFold for
K folds, MultilabelStratifiedShuffleSplit for a hold-out. It fills the folds class by class, rarest
first, so a class with at least K images has images in every fold. A class with fewer cannot: unlike
one label an image, that is not refused (iMet has hundreds of such classes).

Near twins stay together: the groups are stratified in place of the images (a group stands for the
union of its images' labels) and each image takes its group's fold. Groups of twins are small, so
their sizes hardly bend the folds' sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from kaggle_flow.errors import FlowError


def rarest_class(y: np.ndarray) -> np.ndarray:
    """[n] each image's rarest class in multi-hot `y` (fewest images; the lower index on a tie), -1 for
    an image with no label: the one class an image counts as when one must stand for it (label
    shuffling pads by it; near-twin groups are sized by it)."""
    y = np.asarray(y)
    cost = np.where(y > 0, y.sum(axis=0)[None, :], np.iinfo(np.int64).max)
    return np.where(y.any(axis=1), cost.argmin(axis=1), -1)


def _by_group(y: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The rows to stratify (the groups' label unions, or the images) and each image's row among them."""
    if groups is None:
        return y, np.arange(len(y))
    _, inverse = np.unique(groups, return_inverse=True)
    union = np.zeros((int(inverse.max()) + 1, y.shape[1]), dtype=np.int64)
    np.add.at(union, inverse, y)
    return (union > 0).astype(np.uint8), inverse


def kfold(y: np.ndarray, folds: int, seed: int, name: Callable[[int], str], groups: np.ndarray | None = None) -> np.ndarray:
    """The validation fold (0..folds-1) of each image of multi-hot `y`."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold  # sklearn underneath: loaded when splitting

    rows, inverse = _by_group(y, groups)
    if len(rows) < folds:
        raise FlowError(f"{len(rows)} labelled images (or groups of near twins) for {folds} folds")
    splitter = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = np.full(len(rows), -1, dtype=int)
    for k, (_, val_idx) in enumerate(splitter.split(np.zeros(len(rows)), rows)):
        fold[val_idx] = k
    return fold[inverse]


def holdout(
    y: np.ndarray, val_size: float, seed: int, name: Callable[[int], str], what: str, groups: np.ndarray | None = None
) -> np.ndarray:
    """0 for the images of a stratified hold-out of about `val_size` of multi-hot `y`, -1 for the rest."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    n_val = math.ceil(val_size * len(y))
    if not 0 < n_val < len(y):
        raise FlowError(f"{what} gives {n_val} validation images of {len(y)}: need at least one on each side")
    rows, inverse = _by_group(y, groups)
    if len(rows) < 2:
        raise FlowError("the labelled images are all near twins of one another: flow split --ignore-near")
    take = n_val if groups is None else min(max(round(len(rows) * n_val / len(y)), 1), len(rows) - 1)
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=take, random_state=seed)
    _, val_idx = next(splitter.split(np.zeros(len(rows)), rows))
    fold = np.full(len(rows), -1, dtype=int)
    fold[val_idx] = 0
    return fold[inverse]
