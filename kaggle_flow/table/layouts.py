"""Layout readers: a competition's raw files -> the one canonical table.

Every reader returns a pandas DataFrame with the columns of `COLUMNS`:

    id     str    the image's name as the competition knows it (train.csv id, or class/file.jpg)
    path   str    the image file; several files a sample (layout.channel_files): their pattern, see sample_files
    label  Int64  class index; <NA> for test rows (target = "multi": `labels`, str "0 3 16", see target.py)
    split  str    "train", "valid" (labelled: the download's own validation set) or "test"

Rows read from a layout's `valid_dir` keep their origin as split "valid": `flow split` makes them
the validation fold by default. Code that wants every labelled row uses `labelled(table)`.
A new layout is one new reader registered in `READERS`; nothing after reading changes. Kaggle's
CSVs: ids written without their extension get layout.id_extension; one-hot label_columns give the
label; the label cells are read as the target says (table.tags: one class, or space-separated tags); in a test_dir shared with train_dir the test ids come from test_csv, else the sample's ids;
kind "pixels" writes each CSV row once as a PNG (table.pixels) and reads those.

Folders as downloaded. Archives often wrap a folder once more (iChallenge-PM keeps its training
images in PALM-Training400/PALM-Training400/*.jpg, next to the zip they came from), so the folder a
layout reads for `train_dir`, `valid_dir` or `test_dir` is found by one rule (`find_dir`):

    start at DATA/<the name in the TOML>; while that folder holds no image file and exactly one
    sub-folder, and that sub-folder is not named after a class, go down into it.

Hidden entries and __MACOSX do not count, nor do other files (a readme, the zip itself). The ids
stay as the competition knows them (file names, class/file.jpg, valid_dir/file.jpg), whatever the
depth. So train_dir = "PALM-Training400" reads PALM-Training400/PALM-Training400/, and
train_dir = "train" reads train/train/CLASS/ as well as train/CLASS/. A test_dir that lists several
folders (Planet's ["test-jpg", "test-jpg-additional"]) reads each, found by that rule and required;
an id in two of them is one line naming both files.

Validation labels (`valid_csv`) are a .csv or an .xlsx (PALM ships PM_Label_and_Fovea_Location.xlsx),
looked for in valid_dir, then the data folder; when the named file is in neither, a labels.csv there
(the course's conversion of the .xlsx) is read instead. Validation images without labels are an
error, never silently dropped.

`reading_notes` says what a user should know about a table just read: no test images (and what
scores the model instead), or far fewer images read than lie below the data folder.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from kaggle_flow.competition import IMAGE_EXTENSIONS, Competition, Layout
from kaggle_flow.console import shortlist
from kaggle_flow.errors import DataError
from kaggle_flow.fileio import read_csv
from kaggle_flow.names import check_data_paths, path_inside
from kaggle_flow.sample_files import sample_files
from kaggle_flow.table.labelfiles import read_label_map, read_labels
from kaggle_flow.table.pixels import write_pixel_images
from kaggle_flow.table.sample_paths import channel_test_samples, check_unique_test_ids, image_path
from kaggle_flow.table.tags import classes_present, csv_labels, parse_label
from kaggle_flow.target import TARGETS

COLUMNS = ["id", "path", "label", "split"]
LABELLED = ("train", "valid")  # the splits that carry a label
SPLIT_WORDS = {"train": "training", "valid": "validation", "test": "test"}
COURSE_LABELS = "labels.csv"  # the course's conversion of a download's validation labels
UNREAD_SHARE = 0.5  # warn when a layout reads fewer than this share of the images below the data folder

Row = tuple[str, str, int | str | None, str]  # id, path, label (an index; multi: "0 3 16"), split


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


def _frame(rows: list[Row], comp: Competition) -> pd.DataFrame:
    target = TARGETS[comp.target]
    frame = pd.DataFrame(rows, columns=["id", "path", target.column, "split"])
    frame["id"] = frame["id"].astype(str)
    frame["path"] = frame["path"].astype(str)
    frame[target.column] = frame[target.column].astype(target.dtype)
    frame["split"] = frame["split"].astype(str)
    return frame


def _skipped(name: str) -> bool:
    """Entries no layout reads: hidden ones and the __MACOSX folder of zips made on a Mac."""
    return name.startswith(".") or name == "__MACOSX"


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def find_dir(root: Path, name: str | None, classes: Sequence[str] = ()) -> Path | None:
    """The folder a layout reads for `name` (train_dir, valid_dir, test_dir); None when absent.

    DATA/name, then down its chain of single sub-folders while it holds no image file (the rule
    of the module docstring); a sub-folder named after a class ends the chain.
    """
    if name is None:
        return None
    folder = root / name
    if not folder.is_dir():
        return None
    while True:
        with os.scandir(folder) as it:  # scandir knows each entry's type without a stat per file
            entries = [e for e in it if not _skipped(e.name)]
        subs = [e.name for e in entries if e.is_dir()]
        images = any(e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS for e in entries)
        if len(subs) != 1 or subs[0] in classes or images:
            return folder
        folder = folder / subs[0]


def _require_dir(root: Path, name: str, comp: Competition, what: str) -> Path:
    folder = find_dir(root, name, comp.classes)
    if folder is None:
        raise DataError(f"{root / name}: {what} folder not found")
    return folder


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _is_image(p))


def _check_unique(ids: pd.Series, file: Path, line_offset: int = 2) -> None:
    dup = ids.duplicated(keep="first")
    if dup.any():
        pos = int(dup.to_numpy().nonzero()[0][0])
        raise DataError(f"{file} line {pos + line_offset}: duplicate id '{ids.iloc[pos]}'")


def _check_classes(rows: list[Row], comp: Competition, where: Path) -> None:
    present = classes_present(label for _, _, label, split in rows if split in LABELLED)
    empty = [name for i, name in enumerate(comp.classes) if i not in present]
    if empty:
        raise DataError(f"{where}: class '{empty[0]}' has no training images")


def _labels_file(root: Path, valid: Path, name: str) -> Path | None:
    """The validation labels: `name` in valid_dir or the data folder, else the course's labels.csv."""
    for candidate in (name, COURSE_LABELS):
        for folder in (valid, root):
            if (folder / candidate).is_file():
                return folder / candidate
    return None


# --- the readers -----------------------------------------------------------------------------


def _listed_test_rows(root: Path, comp: Competition, file: Path, column: str) -> list[Row]:
    """Test images named by a CSV's `column` (test_csv, or the sample's ids), in test_dir (one folder: Layout checks)."""
    folder = _require_dir(root, str(comp.layout.test_dir or comp.layout.train_dir), comp, "test image")
    ids = read_csv(file, [column])[column].str.strip()
    _check_unique(ids, file)
    rows: list[Row] = []
    for line, image_id in enumerate(ids, start=2):
        where = f"{file} line {line}"
        if not image_id:
            raise DataError(f"{where}: empty id")
        name, path = image_path(folder, image_id, comp.layout, where, test=True)
        rows.append((name, str(path), None, "test"))
    return rows


def _test_rows(root: Path, comp: Competition, train: Sequence[Row] = ()) -> list[Row]:
    """Test images: those test_csv names; in a test_dir shared with train_dir, the sample's ids
    (else the images no training row reads); else a flat folder, or one folder per class (labels
    hidden: scoring uses solution.csv), or the images of each folder of a list of them."""
    layout = comp.layout
    if layout.test_csv and layout.test_dir:
        return _listed_test_rows(root, comp, root / layout.test_csv, layout.test_id_column)
    shared = layout.test_dir is not None and layout.test_dir == layout.train_dir
    sample = root / comp.submission.sample if comp.submission.sample else None
    if shared and sample is not None and sample.is_file():
        return _listed_test_rows(root, comp, sample, comp.submission.id_column)
    taken = {path for _, path, _, _ in train} if shared else set()
    if len(layout.test_folders) > 1:  # several, each required: a list names folders the download has
        folders = [_require_dir(root, name, comp, "test image") for name in layout.test_folders]
        rows = [row for folder in folders for row in _folder_test_rows(folder, layout, taken)]
        check_unique_test_ids(rows)
        return rows
    test_dir = find_dir(root, next(iter(layout.test_folders), None), comp.classes)
    return _folder_test_rows(test_dir, layout, taken) if test_dir is not None else []


def _folder_test_rows(test_dir: Path, layout: Layout, taken: set[str]) -> list[Row]:
    """The test images of one folder, flat or one folder per class (ids relative to it), but those in `taken`."""
    if layout.channel_files:  # one sample a group of channel files (table.sample_paths)
        samples = channel_test_samples(test_dir, layout.channel_files, layout.id_extension)
        return [(i, p, None, "test") for i, p in samples if p not in taken]
    return [
        (path.relative_to(test_dir).as_posix(), str(path), None, "test")
        for path in sorted(test_dir.rglob("*"))
        if _is_image(path) and not any(map(_skipped, path.relative_to(test_dir).parts)) and str(path) not in taken
    ]


def _valid_label_rows(root: Path, comp: Competition) -> list[Row]:
    """valid_dir's images with their labels from valid_csv (prefix layout)."""
    layout = comp.layout
    valid = find_dir(root, layout.valid_dir, comp.classes)
    if valid is None or not layout.valid_csv:
        return []
    file = _labels_file(root, valid, layout.valid_csv)
    if file is None:
        n = len(_image_files(valid))
        if not n:
            return []
        raise DataError(
            f"{valid}: {n} validation images but no labels: neither {layout.valid_csv} nor {COURSE_LABELS} "
            f"in {valid} or {root}"
        )
    frame, word = read_labels(file, [layout.valid_id_column, layout.valid_label_column])
    ids = frame[layout.valid_id_column].str.strip()
    dup = ids.duplicated(keep="first")
    if dup.any():
        raise DataError(f"{file} {word} {dup[dup].index[0]}: duplicate id '{ids[dup].iloc[0]}'")
    rows: list[Row] = []
    for number, image_id, value in zip(frame.index, ids, frame[layout.valid_label_column]):
        where = f"{file} {word} {number}"
        if not image_id:
            raise DataError(f"{where}: empty id")
        label = parse_label(value, comp, "index", where)
        path = path_inside(valid, image_id, where)
        if not path.is_file():
            raise DataError(f"{where}: image '{image_id}' not found in {valid}")
        rows.append((f"{layout.valid_dir}/{image_id}", str(path), label, "valid"))
    return rows


def read_csv_layout(root: Path, comp: Competition) -> pd.DataFrame:
    layout = comp.layout
    if layout.train_csv is None:
        raise DataError(f"{comp.path}: layout 'csv' needs layout.train_csv")
    file = root / layout.train_csv
    frame = read_csv(file, [layout.id_column, *(layout.label_columns or [layout.label_column])])
    images = _require_dir(root, layout.train_dir, comp, "training image")
    ids = frame[layout.id_column].str.strip()
    _check_unique(ids, file)
    empty = (ids == "").to_numpy()
    if empty.any():
        raise DataError(f"{file} line {int(empty.nonzero()[0][0]) + 2}: empty id")
    labels = csv_labels(frame, file, comp)
    rows: list[Row] = []
    for line, (image_id, label) in enumerate(zip(ids, labels), start=2):
        name, path = image_path(images, image_id, layout, f"{file} line {line}")
        rows.append((name, str(path), label, "train"))
    _check_classes(rows, comp, file)
    if layout.label_map:
        read_label_map(root / layout.label_map, comp.classes)
    return _frame(rows + _test_rows(root, comp, rows), comp)


def _class_folder_rows(folder: Path, comp: Competition) -> list[Row]:
    rows: list[Row] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not _skipped(p.name)):
        if sub.name not in comp.classes:
            raise DataError(f"{sub}: folder '{sub.name}' is not a class (classes: {', '.join(comp.classes)})")
        label = comp.classes.index(sub.name)
        for path in sorted(sub.rglob("*")):
            if _is_image(path):
                rows.append((path.relative_to(folder).as_posix(), str(path), label, "train"))
    return rows


def read_folders_layout(root: Path, comp: Competition) -> pd.DataFrame:
    layout = comp.layout
    train = _require_dir(root, layout.train_dir, comp, "training image")
    rows = _class_folder_rows(train, comp)
    valid = find_dir(root, layout.valid_dir, comp.classes)
    if valid is not None:
        rows += [(f"{layout.valid_dir}/{i}", p, lab, "valid") for i, p, lab, _ in _class_folder_rows(valid, comp)]
    _check_classes(rows, comp, train)
    return _frame(rows + _test_rows(root, comp), comp)


def read_prefix_layout(root: Path, comp: Competition) -> pd.DataFrame:
    layout = comp.layout
    train = _require_dir(root, layout.train_dir, comp, "training image")
    prefixes = sorted(layout.prefix_labels, key=len, reverse=True)
    rows: list[Row] = []
    for path in _image_files(train):
        prefix = next((p for p in prefixes if path.name.startswith(p)), None)
        if prefix is None:
            raise DataError(
                f"{path}: file name '{path.name}' starts with none of the label prefixes "
                f"({', '.join(sorted(layout.prefix_labels))})"
            )
        rows.append((path.name, str(path), layout.prefix_labels[prefix], "train"))
    rows += _valid_label_rows(root, comp)
    _check_classes(rows, comp, train)
    return _frame(rows + _test_rows(root, comp), comp)


def read_pixels_layout(root: Path, comp: Competition) -> pd.DataFrame:
    """Pixel CSVs: each row written once as a PNG (table.pixels), then read like any image."""
    layout = comp.layout  # its train_csv is given and test_dir set apart (competition.Layout checks)
    file = root / str(layout.train_csv)
    rows: list[Row] = []
    for image in write_pixel_images(file, root / layout.train_dir, layout.image_side, layout.label_column):
        label = parse_label(image.label or "", comp, layout.label_form, f"{file} line {image.line}")
        rows.append((image.name, str(image.path), label, "train"))
    _check_classes(rows, comp, file)
    if layout.test_csv and layout.test_dir:
        test = write_pixel_images(root / layout.test_csv, root / layout.test_dir, layout.image_side, None)
        rows += [(image.name, str(image.path), None, "test") for image in test]
    return _frame(rows, comp)


READERS: dict[str, Callable[[Path, Competition], pd.DataFrame]] = {
    "csv": read_csv_layout,
    "folders": read_folders_layout,
    "prefix": read_prefix_layout,
    "pixels": read_pixels_layout,
}


def read_table(root: Path, comp: Competition) -> pd.DataFrame:
    """Read the competition's files under `root` into the canonical table."""
    check_data_paths(root, comp.data_paths(), comp.path)
    return READERS[comp.layout.kind](root, comp)


def class_names(root: Path, comp: Competition) -> list[str]:
    """Readable class names for tables and plots: layout.label_map's name of each class (the
    classes stay the codes the submission writes), else the class itself."""
    if not comp.layout.label_map:
        return list(comp.classes)
    check_data_paths(root, comp.data_paths(), comp.path)
    names = read_label_map(root / comp.layout.label_map, comp.classes)
    return [names.get(c, c) for c in comp.classes]


# --- what a user should know about a table just read -----------------------------------------


class Note(NamedTuple):
    """One line for the user about the data just read; `warning` ones print as warnings."""

    text: str
    warning: bool = False


def no_test_images(root: Path, comp: Competition, table: pd.DataFrame) -> str:
    """Why there is nothing to submit, and what scores the model instead (one line)."""
    names = comp.layout.test_folders
    folders = [find_dir(root, name, comp.classes) for name in names]
    if not names:
        where = "the layout names no test_dir"
    elif None in folders:
        where = f"no {names[folders.index(None)]} folder in {root}"
    else:
        where = f"{' and '.join(map(str, folders))} hold{'s' if len(folders) == 1 else ''} no images"
    n_valid = split_counts(table)["valid"]
    instead = (
        f"flow train scores each run on the download's {n_valid} validation images"
        if n_valid
        else "flow train scores each run on its validation fold (flow split)"
    )
    return f"{comp.name}: no test images ({where}); nothing to submit: {instead}"


def _images_below(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not _skipped(d)]
        for name in files:
            if not _skipped(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                yield Path(folder, name)


def unread_images(root: Path, comp: Competition, table: pd.DataFrame) -> str | None:
    """A warning when the table holds fewer than half of the image files below `root`: the layout
    most likely points at the wrong folder (a download nested differently)."""
    real_root = root.resolve()
    files = list(_images_below(real_root))
    read_files = [file for path in table["path"] for file in sample_files(path)]  # several a sample: channel files
    if len(read_files) >= UNREAD_SHARE * len(files):
        return None
    parents: dict[str, Path] = {}  # resolve each folder once: ids may reach files through symlinks
    read = set()
    for path in map(Path, read_files):
        key = str(path.parent)
        if key not in parents:
            parents[key] = path.parent.resolve()
        read.add(parents[key] / path.name)
    unread = Counter(p.parent.relative_to(real_root).as_posix() for p in files if p not in read)
    folders = [f"{folder} ({n})" for folder, n in unread.most_common()]
    layout = comp.layout
    first = unread.most_common(1)[0][0].split("/")[0] if unread else ""
    keys = [("valid_dir", layout.valid_dir), *(("test_dir", name) for name in layout.test_folders)]
    key = next((k for k, v in keys if v and v.split("/")[0] == first), "train_dir")
    toml = comp.path.relative_to(Path.cwd()) if comp.path.is_relative_to(Path.cwd()) else comp.path
    return (
        f"{root}: the layout reads {len(read_files)} of the {len(files)} images below it; images in folders "
        f"the layout does not read: {shortlist(folders, 3)}; see layout.{key} in {toml}"
    )


def reading_notes(root: Path, comp: Competition, table: pd.DataFrame) -> list[Note]:
    """What `flow import` and `flow eda` say about the table read from `root` (empty when all is well)."""
    notes = []
    unread = unread_images(root, comp, table)
    if unread:
        notes.append(Note(unread, warning=True))
    if not (table["split"] == "test").any():
        notes.append(Note(no_test_images(root, comp, table)))
    return notes
