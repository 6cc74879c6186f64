"""Folds and label shuffling of a multi-label table (a `labels` column of class sets): iterative
stratification keeps every class in every fold, near twins together; padding goes by the rarest label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kaggle_flow.competition import get_competition
from kaggle_flow.errors import FlowError
from kaggle_flow.explore.balance import balance_counts, label_shuffle
from kaggle_flow.explore.multifolds import rarest_class
from kaggle_flow.explore.split import describe_folds, fold_counts, load_folds, make_folds, save_folds, train_val
from kaggle_flow.target import TARGETS
from kaggle_flow.workspace import Workspace

CLASSES = ["haze", "water", "road", "mine", "cloud"]


def _sets(n: int, seed: int, rare: int = 6) -> np.ndarray:
    """n multi-hot rows over 5 classes: four common (~35%) and class 3 in exactly `rare` images."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 5)) < 0.35).astype(np.uint8)
    y[:, 3] = 0
    y[rng.choice(n, rare, replace=False), 3] = 1
    return y


def _table(y: np.ndarray, split: list[str] | None = None, n_test: int = 2) -> pd.DataFrame:
    multi = TARGETS["multi"]
    rows = [(f"i{i}", multi.format(row), (split or ["train"] * len(y))[i]) for i, row in enumerate(y)]
    rows += [(f"t{i}", None, "test") for i in range(n_test)]
    frame = pd.DataFrame(rows, columns=["id", "labels", "split"])
    frame["path"] = frame["id"]
    return frame


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [3, 5])
def test_every_class_with_k_images_is_in_every_fold_and_each_image_in_one(seed: int, k: int) -> None:
    y = _sets(60, seed, rare=k)
    folds = make_folds(_table(y), folds=k, seed=seed, class_names=CLASSES)
    assert sorted(folds["id"]) == sorted(f"i{i}" for i in range(60))  # each labelled image once, test rows none
    assert set(folds["fold"]) == set(range(k))
    counts = fold_counts(folds, CLASSES)
    assert (counts.to_numpy() >= 1).all()  # the rare class too: exactly k images, one a fold
    assert counts.loc["mine"].tolist() == [1] * k
    assert counts.sum(axis=1).tolist() == y.sum(axis=0).tolist()  # an image counts in each of its classes
    assert describe_folds(folds) == f"{k} multi-label stratified folds (seed {seed})"
    again = make_folds(_table(y), folds=k, seed=seed, class_names=CLASSES)
    pd.testing.assert_frame_equal(again, folds)


def test_holdout_keeps_each_class_on_both_sides() -> None:
    y = _sets(100, 3, rare=10)
    folds = make_folds(_table(y), val_size=0.2, seed=0, class_names=CLASSES)
    assert (folds["fold"] == 0).sum() == 20
    held = fold_counts(folds, CLASSES)
    assert (held[0] >= 1).all() and (held[-1] >= 1).all()
    assert held.loc["mine", 0] == 2  # a fifth of its 10 images


def test_default_folds_of_a_multi_label_table() -> None:
    y = _sets(50, 4)
    folds = make_folds(_table(y), class_names=CLASSES)
    assert describe_folds(folds) == "a multi-label stratified 10% hold-out (seed 42) as fold 0"
    assert (folds["fold"] == 0).sum() == 5
    split = ["valid" if i % 5 == 0 else "train" for i in range(50)]
    kept = make_folds(_table(y, split), class_names=CLASSES)
    assert (kept["fold"] == 0).tolist() == [s == "valid" for s in split]
    only_valid = y.copy()
    only_valid[:, 3] = 0
    only_valid[0, 3] = 1  # image 0 is in the validation set
    with pytest.raises(FlowError, match="class 'mine' has no images outside the download's validation set"):
        make_folds(_table(only_valid, split), class_names=CLASSES)


def test_near_twins_stay_in_one_fold() -> None:
    y = _sets(60, 5)
    groups = np.arange(60)
    groups[[1, 2, 3]] = 1  # three twins
    groups[[10, 40]] = 10
    folds = make_folds(_table(y), folds=4, seed=0, class_names=CLASSES, groups=groups)
    fold = folds["fold"].to_numpy()
    assert len(set(fold[[1, 2, 3]])) == 1 and fold[10] == fold[40]
    assert (fold_counts(folds, CLASSES).to_numpy() >= 1).all()
    assert describe_folds(folds) == "4 multi-label stratified folds (seed 0, near twins kept together)"
    holdout = make_folds(_table(y), val_size=0.25, seed=0, class_names=CLASSES, groups=groups)["fold"].to_numpy()
    assert len(set(holdout[[1, 2, 3]])) == 1 and holdout[10] == holdout[40]


def test_multi_label_folds_load_back_until_a_label_changes(tmp_path: Path) -> None:
    ws = Workspace(get_competition("lemon"), tmp_path / "data", tmp_path / "runs" / "x", tmp_path / "subs" / "x")
    y = _sets(30, 6)
    y[7] = 0  # an image with no label: an empty cell
    table = _table(y)
    folds = make_folds(table, folds=3, seed=0, class_names=CLASSES)
    save_folds(ws, folds, describe_folds(folds))
    assert ws.folds_file().read_text().splitlines()[0] == "id,labels,split,fold"
    loaded = load_folds(ws, table)
    pd.testing.assert_frame_equal(loaded[["id", "labels", "fold"]], folds[["id", "labels", "fold"]])
    train, val = train_val(table, loaded, 1)
    assert len(train) + len(val) == 30 and set(train["id"]).isdisjoint(val["id"])
    edited = table.copy()
    edited.loc[0, "labels"] = "0 1 2 3 4"
    with pytest.raises(FlowError, match="was made from other data"):
        load_folds(ws, edited)


def test_rarest_class_of_each_image() -> None:
    y = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0], [1, 0, 0]])  # images per class: 4, 2, 1
    assert rarest_class(y).tolist() == [1, 0, 2, -1, 0]


def test_label_shuffle_pads_each_image_under_its_rarest_label() -> None:
    y = np.array([[1, 0, 0]] * 8 + [[1, 1, 0]] * 3 + [[0, 0, 1]] * 2 + [[0, 0, 0]])
    train = _table(y, n_test=0)
    shuffled = label_shuffle(train, seed=0)
    rarest = rarest_class(TARGETS["multi"].encode(shuffled, 3))
    assert np.bincount(rarest[rarest >= 0]).tolist() == [8, 8, 8]  # rarest 0: 8 images; 1: 3 -> 8; 2: 2 -> 8
    assert (rarest == -1).sum() == 1  # the image with no label: kept once
    assert set(shuffled["id"]) == set(train["id"])  # every image used
    counts = balance_counts(train, ["a", "b", "c"], seed=0)
    assert counts.to_dict("list") == {"class": ["a", "b", "c"], "before": [11, 3, 2], "after": [16, 8, 8]}


def test_balance_counts_one_label_an_image_unchanged() -> None:
    train = pd.DataFrame({"id": [f"i{i}" for i in range(10)], "label": pd.array([0] * 7 + [1] * 3, dtype="Int64"),
                          "split": "train", "path": "x"})
    assert balance_counts(train, ["a", "b"], seed=1).to_dict("list") == {"class": ["a", "b"], "before": [7, 3], "after": [7, 7]}
