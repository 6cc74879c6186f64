from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from trees import garbage_tree, lemon_tree, palm_tree, zodiac_tree

from kaggle_flow.competition import get_competition
from kaggle_flow.errors import DataError
from kaggle_flow.layouts import COLUMNS, describe_counts, labelled, read_table, split_counts


def _check_canonical(table: pd.DataFrame) -> None:
    assert list(table.columns) == COLUMNS
    assert str(table["label"].dtype) == "Int64"
    assert set(table["split"]) <= {"train", "valid", "test"}
    assert table.loc[table["split"] == "test", "label"].isna().all()
    assert labelled(table)["label"].notna().all()
    assert not table["id"].duplicated().any()
    assert all(Path(p).is_file() for p in table["path"])


def test_lemon_layout(tmp_path: Path) -> None:
    table = read_table(lemon_tree(tmp_path), get_competition("lemon"))
    _check_canonical(table)
    assert (table["split"] == "train").sum() == 16
    assert (table["split"] == "test").sum() == 5
    assert table.loc[0, "id"] == "train_0_000.jpg"


def test_zodiac_layout_keeps_its_validation_set(tmp_path: Path) -> None:
    table = read_table(zodiac_tree(tmp_path), get_competition("zodiac"))
    _check_canonical(table)
    assert split_counts(table) == {"train": 12 * 3, "valid": 12 * 3, "test": 5}
    assert table.loc[table["id"] == "dog/dog_000.jpg", ["label", "split"]].values.tolist() == [[10, "train"]]
    assert table.loc[table["id"] == "valid/pig/pig_v000.jpg", ["label", "split"]].values.tolist() == [[11, "valid"]]
    valid_ids = table.loc[table["split"] == "valid", "id"]
    assert valid_ids.str.startswith("valid/").all()
    rows = labelled(table)
    assert len(rows) == 72 and list(rows.index) == list(range(72)) and set(rows["split"]) == {"train", "valid"}


def test_describe_counts() -> None:
    assert describe_counts({"train": 16, "valid": 0, "test": 5}) == "16 training and 5 test images"
    assert describe_counts({"train": 36, "valid": 36, "test": 5}) == "36 training, 36 validation and 5 test images"


def test_palm_layout_labels_from_prefix_and_csv(tmp_path: Path) -> None:
    table = read_table(palm_tree(tmp_path), get_competition("palm"))
    _check_canonical(table)
    labels = dict(zip(table["id"], table["label"]))
    assert labels["P0001.jpg"] == 1 and labels["H0001.jpg"] == 0 and labels["N0002.jpg"] == 0
    assert labels["PALM-Validation400/V0002.jpg"] == 1
    splits = dict(zip(table["id"], table["split"]))
    assert splits["P0001.jpg"] == "train"
    assert {i for i, s in splits.items() if s == "valid"} == {f"PALM-Validation400/V000{i}.jpg" for i in range(1, 5)}
    assert split_counts(table) == {"train": 9, "valid": 4, "test": 4}


def test_garbage_layout(tmp_path: Path) -> None:
    table = read_table(garbage_tree(tmp_path), get_competition("garbage"))
    _check_canonical(table)
    assert table.groupby("label").size().tolist() == [4, 4]


def _lemon_error(tmp_path: Path, csv: str) -> str:
    root = lemon_tree(tmp_path)
    (root / "train_images.csv").write_text(csv)
    with pytest.raises(DataError) as info:
        read_table(root, get_competition("lemon"))
    return str(info.value).replace(str(root), "ROOT")


def test_missing_column(tmp_path: Path) -> None:
    assert _lemon_error(tmp_path, "id,label\nx.jpg,0\n") == (
        "ROOT/train_images.csv: missing column 'class_num' (found: id, label)"
    )


def test_unknown_label(tmp_path: Path) -> None:
    csv = "id,class_num\ntrain_0_000.jpg,0\ntrain_1_000.jpg,7\n"
    assert _lemon_error(tmp_path, csv) == "ROOT/train_images.csv line 3: unknown label '7' (a class index 0-3)"


def test_duplicate_id(tmp_path: Path) -> None:
    csv = "id,class_num\ntrain_0_000.jpg,0\ntrain_1_000.jpg,1\ntrain_0_000.jpg,0\n"
    assert _lemon_error(tmp_path, csv) == "ROOT/train_images.csv line 4: duplicate id 'train_0_000.jpg'"


def test_id_outside_data_folder(tmp_path: Path) -> None:
    csv = "id,class_num\n../../etc/passwd,0\n"
    assert _lemon_error(tmp_path, csv) == (
        "ROOT/train_images.csv line 2: id '../../etc/passwd' points outside the data folder ROOT/train_images"
    )


def test_missing_image(tmp_path: Path) -> None:
    csv = "id,class_num\nghost.jpg,0\n"
    assert _lemon_error(tmp_path, csv) == (
        "ROOT/train_images.csv line 2: image 'ghost.jpg' not found in ROOT/train_images"
    )


def test_empty_class(tmp_path: Path) -> None:
    csv = "id,class_num\ntrain_0_000.jpg,0\ntrain_1_000.jpg,1\ntrain_2_000.jpg,2\n"
    assert _lemon_error(tmp_path, csv) == "ROOT/train_images.csv: class 'off_grade' has no training images"


def test_unknown_class_folder(tmp_path: Path) -> None:
    root = garbage_tree(tmp_path)
    (root / "train" / "metal").mkdir()
    with pytest.raises(DataError) as info:
        read_table(root, get_competition("garbage"))
    assert str(info.value) == f"{root}/train/metal: folder 'metal' is not a class (classes: other, recyclable)"


def test_prefix_without_label(tmp_path: Path) -> None:
    root = palm_tree(tmp_path)
    (root / "PALM-Training400" / "X0001.jpg").write_bytes(b"")
    with pytest.raises(DataError) as info:
        read_table(root, get_competition("palm"))
    assert str(info.value) == (
        f"{root}/PALM-Training400/X0001.jpg: file name 'X0001.jpg' starts with none of the label prefixes (H, N, P)"
    )


def test_reading_never_modifies_input(tmp_path: Path) -> None:
    root = lemon_tree(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    read_table(root, get_competition("lemon"))
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
