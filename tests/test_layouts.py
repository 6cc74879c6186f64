from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from trees import garbage_tree, lemon_tree, palm_tree, zodiac_tree

from kaggle_flow.competition import get_competition
from kaggle_flow.errors import DataError
from kaggle_flow.table.layouts import COLUMNS, describe_counts, labelled, read_table, split_counts


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
        "ROOT/train_images.csv: missing column 'class_num' (found: 'id', 'label')"
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


# --- folders and labels as downloaded ----------------------------------------------------------


def _palm_download(tmp_path: Path, scale: float = 0.02) -> Path:
    from course_trees import make_palm

    return make_palm(tmp_path / "palm", scale=scale)


def test_palm_as_downloaded_nested_training_and_xlsx_labels(tmp_path: Path) -> None:
    from course_trees import PALM_GT, split_counts as generated

    root = _palm_download(tmp_path)
    table = read_table(root, get_competition("palm"))
    _check_canonical(table)
    assert split_counts(table) == generated("palm", 0.02) == {"train": 8, "valid": 8, "test": 0}
    train = table[table["split"] == "train"]
    labels = dict(zip(train["id"], train["label"]))
    positive = {f"P000{i}.jpg": 1 for i in range(1, 5)}
    assert labels == {**positive, **{f"N000{i}.jpg": 0 for i in range(1, 4)}, "H0001.jpg": 0}
    assert all(Path(p).parent == root / "PALM-Training400" / "PALM-Training400" for p in train["path"])
    gt = pd.read_excel(root / PALM_GT)
    valid = table[table["split"] == "valid"]
    expected = {f"PALM-Validation400/{name}": label for name, label in zip(gt["imgName"], gt["Label"])}
    assert dict(zip(valid["id"], valid["label"])) == expected and set(expected.values()) == {0, 1}


def _set_cell(file: Path, row: int, column: str, value: object) -> None:
    """Change one cell of the first sheet; `row` as Excel numbers it (the header is row 1)."""
    frame = pd.read_excel(file, dtype=object)
    frame.loc[row - 2, column] = value
    frame.to_excel(file, index=False)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("Label", 7, "row 4: unknown label '7' (a class index 0-1)"),
        ("Label", "yes", "row 4: unknown label 'yes' (a class index 0-1)"),
        ("imgName", "V0999.jpg", "row 4: image 'V0999.jpg' not found in ROOT/PALM-Validation400"),
        ("imgName", "V0001.jpg", "row 4: duplicate id 'V0001.jpg'"),
    ],
)
def test_palm_xlsx_bad_row_is_one_line(tmp_path: Path, column: str, value: object, message: str) -> None:
    from course_trees import PALM_GT

    root = _palm_download(tmp_path)
    _set_cell(root / PALM_GT, 4, column, value)
    with pytest.raises(DataError) as info:
        read_table(root, get_competition("palm"))
    assert str(info.value).replace(str(root), "ROOT") == f"ROOT/{PALM_GT} {message}"


def test_palm_xlsx_missing_column_and_not_a_workbook(tmp_path: Path) -> None:
    from course_trees import PALM_GT

    root = _palm_download(tmp_path)
    gt = root / PALM_GT
    pd.read_excel(gt).rename(columns={"Label": "label"}).to_excel(gt, index=False)
    with pytest.raises(DataError) as info:
        read_table(root, get_competition("palm"))
    assert str(info.value) == f"{gt}: missing column 'Label' (found: 'ID', 'imgName', 'label', 'Fovea_X', 'Fovea_Y')"
    gt.write_text("ID,imgName,Label\n")
    with pytest.raises(DataError) as info:
        read_table(root, get_competition("palm"))
    assert str(info.value).startswith(f"{gt}: not a readable .xlsx workbook: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("where", [".", "PALM-Validation400"])
def test_palm_course_labels_csv_reads_the_same(tmp_path: Path, where: str) -> None:
    """The course converts the .xlsx to labels.csv; either file gives the same table."""
    import shutil

    from course_trees import PALM_GT

    root = _palm_download(tmp_path)
    comp = get_competition("palm")
    from_xlsx = read_table(root, comp)
    pd.read_excel(root / PALM_GT).to_csv(root / where / "labels.csv", index=False)
    shutil.rmtree(root / "PALM-Validation-GT")
    pd.testing.assert_frame_equal(read_table(root, comp), from_xlsx)


def test_validation_images_without_labels_are_an_error(tmp_path: Path) -> None:
    import shutil

    root = _palm_download(tmp_path)
    shutil.rmtree(root / "PALM-Validation-GT")
    with pytest.raises(DataError) as info:
        read_table(root, get_competition("palm"))
    valid = root / "PALM-Validation400"
    assert str(info.value) == (
        f"{valid}: 8 validation images but no labels: neither "
        f"PALM-Validation-GT/PM_Label_and_Fovea_Location.xlsx nor labels.csv in {valid} or {root}"
    )


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("files", "found"),
    [
        (["train/a.jpg"], "train"),  # images right there
        (["train/train/a.jpg"], "train/train"),  # a folder of the same name inside
        (["train/images/a.jpg", "train/train.zip", "train/.DS_Store", "train/__MACOSX/x/._a.jpg"], "train/images"),
        (["train/x/y/a.jpg"], "train/x/y"),  # down the whole chain of single folders
        (["train/a.jpg", "train/train/b.jpg"], "train"),  # images here: stop, the sub-folder is not read
        (["train/x/a.jpg", "train/y/b.jpg"], "train"),  # two sub-folders: stop
        (["train/cat/a.jpg"], "train"),  # a class folder is not a wrapper
        (["train/wrap/cat/a.jpg", "train/wrap/dog/b.jpg"], "train/wrap"),
    ],
)
def test_find_dir_follows_single_folders_down_to_the_images(tmp_path: Path, files: list[str], found: str) -> None:
    from kaggle_flow.table.layouts import find_dir

    for name in files:
        _touch(tmp_path / name)
    assert find_dir(tmp_path, "train", ["cat", "dog"]) == tmp_path / found
    assert find_dir(tmp_path, "test", ["cat", "dog"]) is None


def test_flat_and_folder_layouts_read_through_a_nested_download(tmp_path: Path) -> None:
    lemon = lemon_tree(tmp_path / "lemon")  # test_images/test_images/*.jpg
    (lemon / "test_images").rename(tmp_path / "t")
    (lemon / "test_images").mkdir()
    (tmp_path / "t").rename(lemon / "test_images" / "test_images")
    table = read_table(lemon, get_competition("lemon"))
    assert split_counts(table) == {"train": 16, "valid": 0, "test": 5}
    assert (table.loc[table["split"] == "test", "id"] == [f"test_{i:04d}.jpg" for i in range(5)]).all()

    garbage = garbage_tree(tmp_path / "garbage")  # train/garbage_train/CLASS/*.jpg
    (garbage / "train").rename(tmp_path / "g")
    (garbage / "train").mkdir()
    (tmp_path / "g").rename(garbage / "train" / "garbage_train")
    table = read_table(garbage, get_competition("garbage"))
    assert split_counts(table) == {"train": 8, "valid": 0, "test": 5}
    expected = {f"{c}/{c}_{i:03d}.jpg" for c in ("other", "recyclable") for i in range(4)}
    assert set(table.loc[table["split"] == "train", "id"]) == expected


def test_reading_notes_no_test_images_and_unread_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trees import write_image

    from kaggle_flow.table.layouts import Note, reading_notes

    monkeypatch.chdir(tmp_path)
    comp = get_competition("lemon")
    root = lemon_tree(tmp_path / "lemon")
    assert reading_notes(root, comp, read_table(root, comp)) == []
    for i in range(30):  # the second part of a download, in a folder the layout does not name
        write_image(root / "train_images_2" / f"extra_{i:03d}.jpg", seed=i)
    write_image(root / "train_images" / "unlisted.jpg", seed=99)
    toml = comp.path.relative_to(Path.cwd()) if comp.path.is_relative_to(Path.cwd()) else comp.path
    assert reading_notes(root, comp, read_table(root, comp)) == [Note(
        f"{root}: the layout reads 21 of the 52 images below it; images in folders the layout does not read: "
        f"train_images_2 (30), train_images (1); see layout.train_dir in {toml}", warning=True,
    )]

    palm = _palm_download(tmp_path)
    assert reading_notes(palm, get_competition("palm"), read_table(palm, get_competition("palm"))) == [Note(
        f"palm: no test images (no PALM-Testing400 folder in {palm}); nothing to submit: "
        "flow train scores each run on the download's 8 validation images"
    )]
