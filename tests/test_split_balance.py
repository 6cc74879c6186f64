from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaggle_flow.competition import get_competition
from kaggle_flow.console import plural
from kaggle_flow.errors import FlowError
from kaggle_flow.explore.balance import (
    balance_counts,
    balance_setting,
    label_shuffle,
    set_balance,
)
from kaggle_flow.explore.split import (
    default_folds,
    describe_folds,
    ensure_folds,
    load_folds,
    make_folds,
    save_folds,
    table_fingerprint,
    train_val,
)
from kaggle_flow.workspace import Workspace


def _table(counts: list[int], n_test: int = 2, valid: list[int] | None = None) -> pd.DataFrame:
    """`counts` training images per class (+ `valid` images per class in the download's validation set)."""
    rows = [(f"c{label}_{i}", label, "train") for label, n in enumerate(counts) for i in range(n)]
    rows += [(f"v{label}_{i}", label, "valid") for label, n in enumerate(valid or []) for i in range(n)]
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


# --- the default split ------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(counts=class_counts, valid=st.lists(st.integers(min_value=0, max_value=10), min_size=6, max_size=6))
def test_default_uses_the_downloads_validation_set(counts: list[int], valid: list[int]) -> None:
    valid = valid[: len(counts)]
    if not sum(valid):
        valid[0] = 1
    table = _table(counts, valid=valid)
    folds = make_folds(table)
    valid_ids = set(table.loc[table["split"] == "valid", "id"])
    train, val = train_val(table, folds, 0)
    assert set(val["id"]) == valid_ids  # exactly the download's validation set...
    assert not set(train["id"]) & valid_ids  # ...and none of it in training
    assert len(train) == sum(counts)
    assert set(folds["fold"]) == {-1, 0}
    assert describe_folds(folds) == f"the download's validation set ({plural(sum(valid), 'image')}) as fold 0"


def test_default_without_a_validation_set_is_the_10_percent_holdout() -> None:
    table = _table([40, 30, 30])
    folds = make_folds(table)
    assert (folds["fold"] == 0).sum() == 10
    pd.testing.assert_frame_equal(folds, make_folds(table, val_size=0.1, seed=42))
    pd.testing.assert_frame_equal(folds, default_folds(table, ["a", "b", "c"]))
    assert describe_folds(folds) == "a stratified 10% hold-out (seed 42) as fold 0"


def test_explicit_folds_pool_train_and_valid() -> None:
    table = _table([12, 12], valid=[6, 6])
    folds = make_folds(table, folds=3, seed=0)
    assert len(folds) == 36 and set(folds["fold"]) == {0, 1, 2}
    train, val = train_val(table, folds, 0)
    assert len(val) == 12 and len(train) == 24
    assert train["id"].str.startswith("v").any()  # validation-set images now train in fold 0
    assert describe_folds(folds) == "3 stratified folds (seed 0)"
    holdout = make_folds(table, val_size=0.25, seed=3)
    assert (holdout["fold"] == 0).sum() == 9 and len(holdout) == 36
    assert describe_folds(holdout) == "a stratified 25% hold-out (seed 3) as fold 0"


def test_class_only_in_the_validation_set() -> None:
    table = _table([5, 0], valid=[2, 2])
    with pytest.raises(FlowError) as info:
        make_folds(table, class_names=["cat", "dog"])
    assert str(info.value) == (
        "class 'dog' has no images outside the download's validation set; pool them: flow split --val-size F or --folds K"
    )
    assert set(make_folds(table, val_size=0.5, seed=0)["fold"]) == {-1, 0}  # pooling works


def test_both_folds_and_val_size() -> None:
    with pytest.raises(FlowError) as info:
        make_folds(_table([10, 10]), folds=2, val_size=0.2)
    assert str(info.value) == "give either --folds K or --val-size F, not both"


def test_default_holdout_too_small() -> None:
    with pytest.raises(FlowError) as info:
        make_folds(_table([4, 4, 4, 4]))
    assert str(info.value) == (
        "the default 10% hold-out gives 2 validation images of 16: need at least one per class (4) on each side"
    )


# --- the fingerprint and folds.csv ------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(counts=class_counts, seed=st.integers(0, 10**6))
def test_fingerprint_follows_labels_and_rows_only(counts: list[int], seed: int) -> None:
    table = _table(counts, valid=[1] * len(counts))
    print_ = table_fingerprint(table)
    assert len(print_) == 16 and int(print_, 16) >= 0
    shuffled = table.sample(frac=1, random_state=seed).reset_index(drop=True)
    shuffled["path"] = "/elsewhere/" + shuffled["id"]
    assert table_fingerprint(shuffled) == print_  # row order and paths take no part
    assert table_fingerprint(shuffled[shuffled["split"] != "test"]) == print_  # nor test rows
    relabelled = table.copy()
    relabelled.loc[0, "label"] = (int(relabelled.loc[0, "label"]) + 1) % len(counts)
    assert table_fingerprint(relabelled) != print_
    assert table_fingerprint(table.drop(index=1)) != print_
    moved = table.copy()
    moved.loc[0, "split"] = "valid"
    assert table_fingerprint(moved) != print_


def _workspace(tmp_path: Path) -> Workspace:
    comp = get_competition("lemon")
    return Workspace(comp, tmp_path / "data", tmp_path / "runs" / "lemon", tmp_path / "submissions" / "lemon")


def test_saved_folds_load_back_until_the_table_changes(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    table = _table([12, 12, 12, 12])
    folds = make_folds(table, folds=3, seed=0)
    assert save_folds(ws, folds, describe_folds(folds)) == ws.folds_file()
    loaded = load_folds(ws, table)
    pd.testing.assert_frame_equal(loaded[["id", "fold"]], folds[["id", "fold"]])
    assert describe_folds(loaded) == "3 stratified folds (seed 0)"
    for changed in (table.drop(index=5), table.assign(label=table["label"].replace({0: 1}))):
        with pytest.raises(FlowError) as info:
            load_folds(ws, changed)
        assert str(info.value) == f"{ws.folds_file()} was made from other data; run flow split lemon again"
    ws.folds_meta_file().unlink()  # folds.csv without its fingerprint (an older flow, a crash)
    with pytest.raises(FlowError, match="was made from other data"):
        load_folds(ws, table)


def test_hand_edited_fold_numbers(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    table = _table([10, 10])
    save_folds(ws, make_folds(table, folds=2, seed=0), "2 folds")
    lines = ws.folds_file().read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",1"  # moving an image to another fold is fine
    ws.folds_file().write_text("\n".join(lines) + "\n")
    assert load_folds(ws, table)["fold"].iloc[2] == 1
    lines[3] = lines[3].rsplit(",", 1)[0] + ",one"
    ws.folds_file().write_text("\n".join(lines) + "\n")
    with pytest.raises(FlowError) as info:
        load_folds(ws, table)
    assert str(info.value) == f"{ws.folds_file()} line 4: fold 'one' is not a whole number"


def test_ensure_folds_makes_the_default_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = _workspace(tmp_path)
    table = _table([12, 12, 12, 12], valid=[2, 2, 2, 2])
    made = ensure_folds(ws, table)
    assert capsys.readouterr().out == (
        f"No folds yet: made the download's validation set (8 images) as fold 0 in {ws.folds_file()}\n"
    )
    again = ensure_folds(ws, table)  # read back, not made again
    assert capsys.readouterr().out == ""
    pd.testing.assert_frame_equal(again[["id", "fold"]], made[["id", "fold"]])
    assert json.loads(ws.folds_meta_file().read_text())["fingerprint"] == table_fingerprint(table)
    with pytest.raises(FlowError, match="was made from other data"):
        ensure_folds(ws, _table([12, 12, 12, 12]))  # the validation set is gone


# --- the balance setting ----------------------------------------------------------------------


def test_balance_counts_pad_every_class_to_the_largest() -> None:
    counts = balance_counts(_table([7, 3, 5])[lambda t: t["split"] == "train"], ["a", "b", "c"], seed=1)
    assert counts.to_dict("list") == {"class": ["a", "b", "c"], "before": [7, 3, 5], "after": [7, 7, 7]}


def test_balance_setting_round_trip(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    assert balance_setting(ws) is None
    assert set_balance(ws, True) == ws.balance_file()
    assert balance_setting(ws) is True
    set_balance(ws, False)
    assert balance_setting(ws) is False
    for text in ("{", '{"label_shuffling": "yes"}', "[]"):
        ws.balance_file().write_text(text)
        with pytest.raises(FlowError) as info:
            balance_setting(ws)
        assert str(info.value) == f"{ws.balance_file()}: not a balance setting; run flow balance lemon (or --off) to rewrite it"


def test_balance_imports_no_paddle() -> None:
    import subprocess
    import sys

    code = "import sys, kaggle_flow.explore.balance; print('paddle' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
