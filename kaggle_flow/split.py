"""Stratified folds with scikit-learn: a pure function on the canonical table.

The result has one row per labelled image: `id, label, fold`. With K folds, `fold` is the fold in
which the row is validation (0..K-1). With a single hold-out (`val_size`), validation rows have
fold 0 and the rest fold -1, so `--fold 0` means "the hold-out" in both cases.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kaggle_flow.errors import FlowError


def make_folds(
    table: pd.DataFrame,
    *,
    folds: int | None = None,
    val_size: float | None = None,
    seed: int = 42,
    class_names: list[str] | None = None,
) -> pd.DataFrame:
    """Assign each training row to a validation fold, stratified by label."""
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

    train = table.loc[table["split"] == "train", ["id", "label"]].reset_index(drop=True)
    labels = train["label"].to_numpy(dtype=int)
    counts = pd.Series(labels).value_counts()
    name = (lambda i: class_names[i]) if class_names else str

    if (folds is None) == (val_size is None):
        raise FlowError("give either --folds K or --val-size F")
    fold = np.full(len(train), -1, dtype=int)
    if folds is not None:
        if folds < 2:
            raise FlowError(f"--folds must be at least 2 (got {folds})")
        small = counts[counts < folds]
        if len(small):
            label = int(small.index[0])
            raise FlowError(f"class '{name(label)}' has {int(small.iloc[0])} images, fewer than the {folds} folds asked for")
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for k, (_, val_idx) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
            fold[val_idx] = k
    else:
        assert val_size is not None
        if not 0 < val_size < 1:
            raise FlowError(f"--val-size must be between 0 and 1 (got {val_size})")
        small = counts[counts < 2]
        if len(small):
            label = int(small.index[0])
            raise FlowError(f"class '{name(label)}' has {int(small.iloc[0])} image, too few to hold one out")
        n_val = int(np.ceil(val_size * len(labels)))
        if n_val < len(counts) or len(labels) - n_val < len(counts):
            raise FlowError(
                f"--val-size {val_size} gives {n_val} validation images of {len(labels)}: "
                f"need at least one per class ({len(counts)}) on each side"
            )
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
        _, val_idx = next(splitter.split(np.zeros(len(labels)), labels))
        fold[val_idx] = 0
    train["fold"] = fold
    return train


def fold_counts(folds: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """Validation images per class (rows) and fold (columns)."""
    counts = pd.crosstab(folds["label"], folds["fold"]).reindex(range(len(class_names)), fill_value=0)
    counts.index = class_names
    return counts


def train_val(table: pd.DataFrame, folds: pd.DataFrame, fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and validation rows of `table` for one fold."""
    n_folds = int(folds["fold"].max()) + 1
    if not 0 <= fold < n_folds:
        raise FlowError(f"fold {fold} does not exist (folds: 0-{n_folds - 1})")
    val_ids = set(folds.loc[folds["fold"] == fold, "id"])
    known = set(folds["id"])
    train_rows = table[(table["split"] == "train") & table["id"].isin(known)]
    is_val = train_rows["id"].isin(val_ids)
    return train_rows[~is_val].reset_index(drop=True), train_rows[is_val].reset_index(drop=True)
