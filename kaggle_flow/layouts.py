"""Layout readers: a competition's raw files -> the one canonical table.

Every reader returns a pandas DataFrame with the columns of `COLUMNS`:

    id     str    the image's name as the competition knows it (train.csv id, or class/file.jpg)
    path   str    the image file
    label  Int64  class index; <NA> for test rows
    split  str    "train", "valid" (labelled: the download's own validation set) or "test"

Rows read from a layout's `valid_dir` keep their origin as split "valid": `flow split` makes them
the validation fold by default. Code that wants every labelled row uses `labelled(table)`.
A new layout is one new reader registered in `READERS`; nothing after reading changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from kaggle_flow.competition import IMAGE_EXTENSIONS, Competition, Layout
from kaggle_flow.errors import DataError
from kaggle_flow.fileio import read_csv

COLUMNS = ["id", "path", "label", "split"]
LABELLED = ("train", "valid")  # the splits that carry a label
SPLIT_WORDS = {"train": "training", "valid": "validation", "test": "test"}


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows (train and the download's validation set), index reset."""
    return table[table["split"].isin(LABELLED)].reset_index(drop=True)


def split_counts(table: pd.DataFrame) -> dict[str, int]:
    """Images per split: {"train": n, "valid": n, "test": n}."""
    return {split: int((table["split"] == split).sum()) for split in SPLIT_WORDS}


def describe_counts(counts: dict[str, int]) -> str:
    """'16 training and 5 test images'; the validation count only when the download has one."""
    parts = [f"{counts.get(s, 0)} {word}" for s, word in SPLIT_WORDS.items() if counts.get(s) or s != "valid"]
    return (", ".join(parts[:-1]) + " and " + parts[-1]) + " images"


def _frame(rows: list[tuple[str, str, int | None, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["id"] = frame["id"].astype(str)
    frame["path"] = frame["path"].astype(str)
    frame["label"] = frame["label"].astype("Int64")
    frame["split"] = frame["split"].astype(str)
    return frame


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _require_dir(folder: Path, what: str) -> Path:
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder not found")
    return folder


def _inside(root: Path, image_id: str, where: str) -> Path:
    """The path of `image_id` under `root`; refuse ids that climb out of it (../, absolute)."""
    path = (root / image_id).resolve()
    if not path.is_relative_to(root.resolve()):
        raise DataError(f"{where}: id '{image_id}' points outside the data folder {root}")
    return path


def _parse_label(value: str, comp: Competition, form: str, where: str) -> int:
    value = value.strip()
    if form == "name":
        if value in comp.classes:
            return comp.classes.index(value)
        raise DataError(f"{where}: unknown label '{value}' (classes: {', '.join(comp.classes)})")
    if value.isdigit() and int(value) < comp.num_classes:
        return int(value)
    raise DataError(f"{where}: unknown label '{value}' (a class index 0-{comp.num_classes - 1})")


def _check_unique(ids: pd.Series, file: Path, line_offset: int = 2) -> None:
    dup = ids.duplicated(keep="first")
    if dup.any():
        pos = int(dup.to_numpy().nonzero()[0][0])
        raise DataError(f"{file} line {pos + line_offset}: duplicate id '{ids.iloc[pos]}'")


def _check_classes(rows: list[tuple[str, str, int | None, str]], comp: Competition, where: Path) -> None:
    present = {label for _, _, label, split in rows if split in LABELLED}
    empty = [name for i, name in enumerate(comp.classes) if i not in present]
    if empty:
        raise DataError(f"{where}: class '{empty[0]}' has no training images")


def _test_rows(root: Path, layout: Layout) -> list[tuple[str, str, int | None, str]]:
    """Test images: a flat folder, or one folder per class (labels hidden: scoring uses solution.csv)."""
    if layout.test_dir is None or not (root / layout.test_dir).is_dir():
        return []
    test_dir = root / layout.test_dir
    rows = []
    for path in sorted(test_dir.rglob("*")):
        if _is_image(path):
            rows.append((path.relative_to(test_dir).as_posix(), str(path), None, "test"))
    return rows


def read_csv_layout(root: Path, comp: Competition) -> pd.DataFrame:
    layout = comp.layout
    if layout.train_csv is None:
        raise DataError(f"{comp.path}: layout 'csv' needs layout.train_csv")
    file = root / layout.train_csv
    frame = read_csv(file, [layout.id_column, layout.label_column])
    images = _require_dir(root / layout.train_dir, "training image")
    ids = frame[layout.id_column].str.strip()
    _check_unique(ids, file)
    rows: list[tuple[str, str, int | None, str]] = []
    for line, (image_id, value) in enumerate(zip(ids, frame[layout.label_column]), start=2):
        where = f"{file} line {line}"
        if not image_id:
            raise DataError(f"{where}: empty id")
        label = _parse_label(value, comp, layout.label_form, where)
        path = _inside(images, image_id, where)
        if not path.is_file():
            raise DataError(f"{where}: image '{image_id}' not found in {images}")
        rows.append((image_id, str(path), label, "train"))
    _check_classes(rows, comp, file)
    return _frame(rows + _test_rows(root, layout))


def _class_folder_rows(folder: Path, comp: Competition) -> list[tuple[str, str, int | None, str]]:
    rows: list[tuple[str, str, int | None, str]] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name not in comp.classes:
            raise DataError(f"{sub}: folder '{sub.name}' is not a class (classes: {', '.join(comp.classes)})")
        label = comp.classes.index(sub.name)
        for path in sorted(sub.rglob("*")):
            if _is_image(path):
                rows.append((path.relative_to(folder).as_posix(), str(path), label, "train"))
    return rows


def read_folders_layout(root: Path, comp: Competition) -> pd.DataFrame:
    layout = comp.layout
    train = _require_dir(root / layout.train_dir, "training image")
    rows = _class_folder_rows(train, comp)
    if layout.valid_dir and (root / layout.valid_dir).is_dir():
        valid = root / layout.valid_dir
        rows += [(f"{layout.valid_dir}/{i}", p, lab, "valid") for i, p, lab, _ in _class_folder_rows(valid, comp)]
    _check_classes(rows, comp, train)
    return _frame(rows + _test_rows(root, layout))


def read_prefix_layout(root: Path, comp: Competition) -> pd.DataFrame:
    layout = comp.layout
    train = _require_dir(root / layout.train_dir, "training image")
    prefixes = sorted(layout.prefix_labels, key=len, reverse=True)
    rows: list[tuple[str, str, int | None, str]] = []
    for path in sorted(train.iterdir()):
        if not _is_image(path):
            continue
        prefix = next((p for p in prefixes if path.name.startswith(p)), None)
        if prefix is None:
            raise DataError(
                f"{path}: file name '{path.name}' starts with none of the label prefixes "
                f"({', '.join(sorted(layout.prefix_labels))})"
            )
        rows.append((path.name, str(path), layout.prefix_labels[prefix], "train"))
    if layout.valid_dir and layout.valid_csv:
        valid = root / layout.valid_dir
        csv_path = valid / layout.valid_csv if (valid / layout.valid_csv).is_file() else root / layout.valid_csv
        if valid.is_dir() and csv_path.is_file():
            frame = read_csv(csv_path, [layout.valid_id_column, layout.valid_label_column])
            ids = frame[layout.valid_id_column].str.strip()
            _check_unique(ids, csv_path)
            for line, (image_id, value) in enumerate(zip(ids, frame[layout.valid_label_column]), start=2):
                where = f"{csv_path} line {line}"
                label = _parse_label(value, comp, "index", where)
                path = _inside(valid, image_id, where)
                if not path.is_file():
                    raise DataError(f"{where}: image '{image_id}' not found in {valid}")
                rows.append((f"{layout.valid_dir}/{image_id}", str(path), label, "valid"))
    _check_classes(rows, comp, train)
    return _frame(rows + _test_rows(root, layout))


READERS: dict[str, Callable[[Path, Competition], pd.DataFrame]] = {
    "csv": read_csv_layout,
    "folders": read_folders_layout,
    "prefix": read_prefix_layout,
}


def read_table(root: Path, comp: Competition) -> pd.DataFrame:
    """Read the competition's files under `root` into the canonical table."""
    return READERS[comp.layout.kind](root, comp)
