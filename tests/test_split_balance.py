from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaggle_flow.balance import label_shuffle
from kaggle_flow.errors import FlowError
from kaggle_flow.split import make_folds, train_val


def _table(counts: list[int], n_test: int = 2) -> pd.DataFrame:
    rows = [(f"c{label}_{i}", label, "train") for label, n in enumerate(counts) for i in range(n)]
    rows += [(f"t{i}", None, "test") for i in range(n_test)]
    frame = pd.DataFrame(rows, columns=["id", "label", "split"])
    frame["label"] = frame["label"].astype("Int64")
    frame["path"] = frame["id"]
    return frame


class_counts = st.lists(st.integers(min_value=5, max_value=40), min_size=2, max_size=6)


@settings(max_examples=40, deadline=None)
@given(counts=class_counts, k=st.integers(min_value=2, max_value=5), seed=st.integers(0, 10**6))
def test_kfold_loses_nothing_and_stratifies(counts: list[int], k: int, seed: int) -> None:
    table = _table(counts)
    folds = make_folds(table, folds=k, seed=seed)
    train_ids = table.loc[table["split"] == "train", "id"]
    assert sorted(folds["id"]) == sorted(train_ids)  # nothing lost, nothing duplicated, no test row
    assert set(folds["fold"]) == set(range(k))
    per = pd.crosstab(folds["label"], folds["fold"])
    for label, n in enumerate(counts):  # each class's share per fold within one row
        assert per.loc[label].max() - per.loc[label].min() <= 1
        assert abs(per.loc[label] - n / k).max() < 1
    again = make_folds(table, folds=k, seed=seed)
    pd.testing.assert_frame_equal(folds, again)  # same seed, same result


@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(min_value=10, max_value=40), min_size=2, max_size=6), share=st.sampled_from([0.1, 0.2, 0.3]), seed=st.integers(0, 10**6))
def test_holdout_is_stratified(counts: list[int], share: float, seed: int) -> None:
    table = _table(counts)
    folds = make_folds(table, val_size=share, seed=seed)
    assert set(folds["fold"]) == {-1, 0}
    train, val = train_val(table, folds, 0)
    assert len(train) + len(val) == sum(counts)
    assert not set(train["id"]) & set(val["id"])
    for label, n in enumerate(counts):
        n_val = int((val["label"] == label).sum())
        assert abs(n_val - n * len(val) / sum(counts)) <= 1


@settings(max_examples=40, deadline=None)
@given(counts=class_counts, seed=st.integers(0, 10**6))
def test_label_shuffle_balances(counts: list[int], seed: int) -> None:
    table = _table(counts)
    train = table[table["split"] == "train"]
    balanced = label_shuffle(train, seed=seed)
    sizes = balanced["label"].value_counts()
    assert set(sizes) == {max(counts)}  # every class padded to the largest
    assert len(sizes) == len(counts)
    assert set(balanced["id"]) == set(train["id"])  # every image used, none invented
    for label, n in enumerate(counts):  # small classes repeat evenly: each image floor/ceil times
        reps = balanced.loc[balanced["label"] == label, "id"].value_counts()
        assert reps.max() - reps.min() <= 1
    pd.testing.assert_frame_equal(balanced, label_shuffle(train, seed=seed))


def test_balance_never_sees_validation_rows() -> None:
    table = _table([20, 8, 12])
    folds = make_folds(table, folds=4, seed=0)
    train, val = train_val(table, folds, 1)
    balanced = label_shuffle(train, seed=0)
    assert not set(balanced["id"]) & set(val["id"])


def test_too_few_for_folds() -> None:
    with pytest.raises(FlowError) as info:
        make_folds(_table([10, 3]), folds=5, class_names=["cat", "dog"])
    assert str(info.value) == "class 'dog' has 3 images, fewer than the 5 folds asked for"


def test_unknown_fold() -> None:
    table = _table([10, 10])
    with pytest.raises(FlowError) as info:
        train_val(table, make_folds(table, folds=2), 3)
    assert str(info.value) == "fold 3 does not exist (folds: 0-1)"
