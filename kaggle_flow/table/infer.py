"""`flow init NAME --from DOWNLOAD`: a competition's layout read from its files as downloaded.

What is read, in order (each finding keeps the file it came from, for `flow init` to print):

    pixels   a training CSV of label + pixel0..pixelN: square grey images of side sqrt(N + 1)
    csv      a training CSV (train.csv, train_labels.csv, ...) whose one column names the images of
             a folder (train/, train_images/, one shared images/), with or without the extension, or
             ids of several files each ({id}_red.png, {id}_green.png, ...: table.channel_download);
             the labels from one column (class index or name) or from one-hot columns (when 90% of
             the rows are one-hot, the first row that is not is an error naming it); multi-label
             (target "multi") when 5% of the rows hold several: space-separated tags (Planet's
             `agriculture clear primary`, HPA's `0 5 25`), or 0/1 columns with several 1s; the classes
             are the training labels' tokens, never the sample's default row, and a CSV of code,name
             beside them (iMet's labels.csv) names indices
    folders  one folder per class under train/ (names may hold spaces and dashes)
    prefix   a flat train/ whose file names start with the class (`cat.0.jpg` -> "cat.")

The submission comes from the sample (submit_format.py). A JSON of code -> name beside the data
(label_num_to_disease_map.json) is recorded as `label_map`. Grey training images (every one of
SAMPLE spread over the training folder in a grey mode, or RGB files whose three channels are equal,
as scans saved as colour JPEGs are) give `channels = 1`, with the mean and std of their pixels:
training then reads one channel, not three equal ones.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from kaggle_flow.competition import IMAGE_EXTENSIONS
from kaggle_flow.console import shortlist
from kaggle_flow.data.images import GREY_MODES, equal_channels, load_image
from kaggle_flow.errors import DataError
from kaggle_flow.fileio import read_csv
from kaggle_flow.table.channel_download import match_channel_files, record_channels
from kaggle_flow.table.labelfiles import check_label, one_hot_labels, zero_one_cells
from kaggle_flow.table.layouts import find_dir

if TYPE_CHECKING:
    import pandas as pd

PIXEL_COLUMN = re.compile(r"pixel\d+")
PREFIX = re.compile(r"^(\D+?[._\- ]?)\d")  # cat.0.jpg -> "cat."
VALID_NAMES = ("valid", "val", "validation")
PROBE = 50  # rows of a CSV looked at to match ids with image files
ONE_HOT_SHARE = 0.9  # rows of 0/1 columns, exactly one 1, that make them one-hot labels
MULTI_SHARE = 0.05  # rows with several labels (tokens, or 1s) that make a label column multi-label
SAMPLE = 32  # training images, spread over the folder, whose modes say grey or colour (and give a grey mean/std)
STATS_SIZE = 64  # px the sampled grey images are read at for their mean and std


@dataclass
class Found:
    """What a download says: the competition's keys, and where each came from."""

    root: Path
    classes: list[str] = field(default_factory=list)
    layout: dict[str, object] = field(default_factory=dict)
    top: dict[str, object] = field(default_factory=dict)  # keys above [layout]: channels, mean, std
    sources: list[tuple[str, str]] = field(default_factory=list)  # (what, file it came from)
    train_ids: tuple[str, str] = ("id", "label")  # the training CSV's id and label columns, for a missing sample
    test_ids: list[str] | None = None  # pixels: the test rows' ids; else None (the test folder's files)
    test_folders: list[str] = field(default_factory=list)  # the folders named like test ones: the sample may name several

    def note(self, what: str, where: Path | str) -> None:
        where = Path(where)
        shown = where.relative_to(self.root).as_posix() if where.is_relative_to(self.root) else str(where)
        self.sources.append((what, shown or "."))


def _skipped(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and not name.startswith(".")


def data_root(folder: Path) -> Path:
    """The folder holding the download's files: down single sub-folders that hold no file."""
    while True:
        entries = [p for p in folder.iterdir() if not _skipped(p.name)]
        if len(entries) == 1 and entries[0].is_dir():
            folder = entries[0]
        else:
            return folder


def image_files(folder: Path) -> list[str]:
    """The image file names directly in `folder`, sorted."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_file() and _is_image_name(e.name))


def class_dirs(folder: Path) -> list[str]:
    """Sub-folders of `folder` that hold images (anywhere below): the classes of a folders layout."""
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not _skipped(p.name)):
        if any(_is_image_name(p.name) for p in sub.rglob("*")):
            found.append(sub.name)
    return found


def _folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not _skipped(p.name))


def _csvs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".csv")


def sample_file(root: Path) -> Path | None:
    """sample_submission.csv, else a CSV named like a sample (sample_submit.csv)."""
    csvs = _csvs(root)
    exact = [p for p in csvs if p.name.lower() == "sample_submission.csv"]
    return (exact or [p for p in csvs if "sample" in p.name.lower()] or [None])[0]


def _train_csv(root: Path) -> Path | None:
    csvs = [p for p in _csvs(root) if "sample" not in p.name.lower() and "submission" not in p.name.lower()]
    for test in (lambda n: n == "train.csv", lambda n: "train" in n, lambda n: "label" in n):
        hits = [p for p in csvs if test(p.name.lower())]
        if hits:
            return hits[0]
    return None


def _by_words(names: list[str], *words: str) -> str | None:
    return next(iter(_all_by_words(names, *words)), None)


def _all_by_words(names: list[str], *words: str) -> list[str]:
    return [n for n in names if any(w in n.lower() for w in words)]


def _index_classes(values: list[str], where: Path) -> list[str]:
    labels = sorted({check_label(v, f"{where} line {line}") for line, v in enumerate(values, start=2)})
    if not labels:
        raise DataError(f"{where}: no labels")
    if all(v.isdigit() for v in labels):
        return [str(i) for i in range(max(int(v) for v in labels) + 1)]
    return labels


def _label_map(found: Found) -> None:
    """A JSON of label code -> name beside the data (cassava's label_num_to_disease_map.json)."""
    if "label_map" in found.layout:  # a CSV of code,name found with the labels (iMet's labels.csv)
        return
    for file in sorted(found.root.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data and all(str(k).strip().isdigit() for k in data):
            found.layout["label_map"] = file.name
            found.note(f"label names of the codes ({len(data)})", file)
            return


def _pixels(found: Found, train: Path, frame: pd.DataFrame) -> None:
    columns = list(frame.columns)
    pixels = [c for c in columns if PIXEL_COLUMN.fullmatch(c)]
    side = math.isqrt(len(pixels))
    if side * side != len(pixels):
        raise DataError(f"{train}: {len(pixels)} pixel columns, not a square image")
    label = next(c for c in columns if c not in pixels)
    found.classes = _index_classes(list(frame[label]), train)
    found.layout.update(kind="pixels", train_csv=train.name, label_column=label, image_side=side,
                        train_dir="train", test_dir="test")
    found.top.update(channels=1, mean=[0.1307], std=[0.3081])  # MNIST's grey statistics
    found.note(f"pixels: {side}x{side} grey images, label column '{label}'", train)
    test = found.root / "test.csv"
    if test.is_file():
        found.layout["test_csv"] = test.name
        found.test_ids = [str(i + 1) for i in range(len(read_csv(test)))]
        found.note(f"test images: {len(found.test_ids)} rows of pixels", test)
    found.train_ids = ("ImageId", "Label")


def _match_ids(root: Path, ids: list[str], folders: list[str]) -> tuple[str, str] | None:
    """(folder, extension) where every probed id is an image file, with or without the extension."""
    for name in folders:
        folder = find_dir(root, name)
        if folder is None:
            continue
        files = set(image_files(folder))
        if files and all(i in files for i in ids):
            return name, ""
        for ext in sorted({os.path.splitext(f)[1] for f in files}):
            if all(i + ext in files for i in ids):
                return name, ext
    return None


def _csv_layout(found: Found, train: Path) -> None:
    frame = read_csv(train)
    if any(PIXEL_COLUMN.fullmatch(c) for c in frame.columns):
        return _pixels(found, train, frame)
    folders = _folders(found.root)
    ordered = [f for f in folders if "train" in f.lower()] + [f for f in folders if "train" not in f.lower()]
    channels = None  # several files a sample (table.channel_download)
    for id_col in frame.columns:
        ids = [str(v).strip() for v in frame[id_col].head(PROBE)]
        hit = _match_ids(found.root, ids, ordered) if ids and all(ids) else None
        if hit:
            break
    else:
        channels = match_channel_files(found.root, frame, ordered)
        if channels is None:
            first = shortlist(repr(str(v)) for v in frame[frame.columns[0]].head(3))
            raise DataError(f"{train}: no column names the images of {shortlist(folders) or 'any folder'} (first ids: {first})")
        id_col, hit = channels.id_column, (channels.folder, channels.extension)
    image_dir, ext = hit
    found.layout.update(kind="csv", train_csv=train.name, id_column=id_col, train_dir=image_dir)
    found.note(f"training images in {image_dir}/, named by column '{id_col}'" + (f" + '{ext}'" if ext else ""), train)
    if ext:
        found.layout["id_extension"] = ext
    if channels is not None:
        record_channels(found, channels)
    _csv_labels(found, train, frame, [c for c in frame.columns if c != id_col])
    _csv_test(found, image_dir, id_col, ext)
    found.train_ids = (id_col, str(found.layout.get("label_column", "label")))


def _mostly_one_hot(cells: pd.DataFrame) -> bool:
    """Columns meant as one-hot labels: ONE_HOT_SHARE of the rows are 0/1 with exactly one 1, so a
    row that is not (a 2, a blank, two 1s) is an error, never a reason to read the first column alone."""
    if cells.shape[1] < 2 or cells.empty:
        return False
    cells = cells.apply(lambda column: column.str.strip())
    ones, zeros = cells.isin(["1", "1.0"]), cells.isin(["0", "0.0"])
    rows = (ones | zeros).all(axis=1) & (ones.sum(axis=1) == 1)
    return bool(rows.mean() >= ONE_HOT_SHARE)


def _csv_labels(found: Found, train: Path, frame: pd.DataFrame, rest: list[str]) -> None:
    if not rest:
        raise DataError(f"{train}: no label column besides the ids")
    if _several_ones(frame[rest]):
        zero_one_cells(frame, rest, train)  # the first cell that is not 0 or 1, named
        found.classes = list(rest)
        found.layout["label_columns"] = list(rest)
        found.top["target"] = "multi"
        found.note(f"labels: 0/1 columns {', '.join(rest)}, several 1s a row: multi-label (target multi)", train)
        return
    if _mostly_one_hot(frame[rest]):
        one_hot_labels(frame, rest, train)  # the first row that is not one-hot, named
        found.classes = list(rest)
        found.layout["label_columns"] = list(rest)
        found.note(f"labels: one-hot columns {', '.join(rest)}", train)
        return
    label = rest[0]
    values = [str(v) for v in frame[label]]
    if _tag_cells(values):
        return _tags(found, train, label, values)
    _no_tags(values, train)
    found.classes = _index_classes(values, train)
    form = "index" if all(v.strip().isdigit() for v in values if v.strip()) else "name"
    found.layout.update(label_column=label, label_form=form)
    found.note(f"labels: column '{label}' ({'class index' if form == 'index' else 'class name'})", train)


def _several_ones(cells: pd.DataFrame) -> bool:
    """0/1 columns meant as multi-label sets: ONE_HOT_SHARE of the rows are 0/1, MULTI_SHARE of them with several 1s."""
    if cells.shape[1] < 2 or cells.empty:
        return False
    cells = cells.apply(lambda column: column.str.strip())
    ones, zeros = cells.isin(["1", "1.0"]), cells.isin(["0", "0.0"])
    return bool((ones | zeros).all(axis=1).mean() >= ONE_HOT_SHARE and (ones.sum(axis=1) > 1).mean() >= MULTI_SHARE)


def _tag_cells(values: list[str]) -> bool:
    """Cells of space-separated tags: MULTI_SHARE of them hold several tokens, and the tokens combine
    (a cell's set inside another's, or more distinct cells than tokens), where class names that hold a
    space ("Common Chickweed", "Sugar beet") are fixed phrases, one a class."""
    cells = {frozenset(v.split()) for v in values if v.strip()}
    several = sum(len(v.split()) > 1 for v in values)
    if not cells or several < MULTI_SHARE * len(values):
        return False
    tokens = set().union(*cells)
    return len(cells) > len(tokens) or any(a < b for a in cells for b in cells if len(b) > 1)


def _no_tags(values: list[str], train: Path) -> None:
    """A few cells of several labels, each a class on its own elsewhere, in a single-label column: one line."""
    alone = {v.strip() for v in values if len(v.split()) == 1}
    for line, value in enumerate(values, start=2):
        tokens = value.split()
        if len(tokens) > 1 and all(t in alone for t in tokens):
            raise DataError(f"{train} line {line}: label '{value.strip()}' holds {len(tokens)} labels, each a class on "
                            f"its own elsewhere; a competition of several labels an image says target = \"multi\"")


def _tags(found: Found, train: Path, label: str, values: list[str]) -> None:
    """A column of space-separated tags: target multi, the classes the tokens of the training labels
    (indices numerically; the codes of a label file beside them, iMet's labels.csv, with their names)."""
    tokens = sorted({t for line, v in enumerate(values, start=2) for t in check_label(v, f"{train} line {line}").split()})
    indices = all(t.isdigit() for t in tokens)
    found.classes = sorted(tokens, key=int) if indices else tokens
    if indices:
        found.classes = _label_file(found, train, found.classes) or [str(i) for i in range(max(map(int, tokens)) + 1)]
    codes = found.classes == [str(i) for i in range(len(found.classes))]
    found.layout.update(label_column=label, label_form="index" if indices and codes else "name")
    found.top["target"] = "multi"
    several = sum(len(v.split()) > 1 for v in values) / len(values)
    found.note(f"labels: column '{label}', space-separated class {'indices' if indices else 'names'} "
               f"({len(found.classes)} classes, {several:.0%} of the images with several): multi-label (target multi)", train)


def _label_file(found: Found, train: Path, tokens: list[str]) -> list[str] | None:
    """The codes of a CSV of code,name beside the training CSV that names every training token (iMet's
    labels.csv: attribute_id,attribute_name), numerically; recorded as the layout's label_map."""
    for file in _csvs(found.root):
        if file == train or "sample" in file.name.lower() or "submission" in file.name.lower():
            continue
        frame = read_csv(file)
        if frame.shape[1] < 2 or frame.empty:
            continue
        codes = [str(c).strip() for c in frame.iloc[:, 0]]
        if all(c.isdigit() for c in codes) and len(set(codes)) == len(codes) and set(tokens) <= set(codes):
            found.layout["label_map"] = file.name
            found.note(f"label names of the codes ({len(codes)}): column '{frame.columns[1]}'", file)
            return sorted(codes, key=int)
    return None


def _csv_test(found: Found, image_dir: str, id_col: str, ext: str) -> None:
    folders = _folders(found.root)
    tests = _all_by_words([f for f in folders if f != image_dir], "test")
    test_csv = found.root / "test.csv"
    if "train" not in image_dir.lower() and not tests:  # one shared images/ folder
        found.layout["test_dir"] = image_dir
        found.note(f"test images in {image_dir}/ too", found.root / image_dir)
        if test_csv.is_file():
            columns = list(read_csv(test_csv).columns)
            found.layout.update(test_csv=test_csv.name, test_id_column=id_col if id_col in columns else columns[0])
            found.note(f"test ids: column '{found.layout['test_id_column']}'", test_csv)
        return
    _test_dirs(found, tests)


def _test_dirs(found: Found, tests: list[str]) -> None:
    """test_dir the first folder named like a test one; the sample may name images of the others (sample.py)."""
    found.layout["test_dir"] = tests[0] if tests else None
    found.test_folders = tests
    if tests:
        found.note(f"test images in {tests[0]}/", found.root / tests[0])


def _folder_layout(found: Found) -> None:
    folders = _folders(found.root)
    train_name = _by_words(folders, "train")
    train = find_dir(found.root, train_name) if train_name else found.root
    assert train is not None
    classes = class_dirs(train)
    if len(classes) >= 2:
        found.classes = classes
        found.layout.update(kind="folders", train_dir=train_name or ".")
        found.note(f"classes: the {len(classes)} folders", train)
        valid = next((f for f in folders if f.lower() in VALID_NAMES), None)
        if valid is not None:
            found.layout["valid_dir"] = valid
            found.note(f"validation images in {valid}/, one folder per class", found.root / valid)
        _test_dirs(found, [f for f in folders if f.lower() == "test"])
        return
    names = image_files(train)
    prefixes = [m.group(1) if (m := PREFIX.match(n)) else None for n in names]
    distinct = sorted({p for p in prefixes if p})
    if not names or None in prefixes or len(distinct) < 2:
        what = "no images" if not names else "no class folders, no labels CSV, no class prefix in the file names"
        raise DataError(f"{found.root}: cannot read the labels: {what} in {train.relative_to(found.root).as_posix() or '.'}")
    found.classes = [p.rstrip("._- ") for p in distinct]
    found.layout.update(kind="prefix", train_dir=train_name, prefix_labels={p: i for i, p in enumerate(distinct)})
    found.note(f"labels: the file-name prefixes {', '.join(distinct)}", train)
    _test_dirs(found, _all_by_words([f for f in folders if f != train_name], "test"))


def read_download(root: Path, train_csv: Path | None = None) -> Found:
    """The layout of a download's files (already unpacked) at `root`."""
    found = Found(root=root)
    train = train_csv or _train_csv(root)
    if train is not None:
        _csv_layout(found, train)
    else:
        _folder_layout(found)
    _label_map(found)
    _grey(found)
    return found


def _grey(found: Found) -> None:
    """channels = 1 and the pixels' mean and std when every sampled training image is grey: a grey mode,
    or RGB with three equal channels (a pixel CSV has said so already); an image PIL cannot open is left
    to `flow eda` to name."""
    train = find_dir(found.root, str(found.layout.get("train_dir", ".")))
    if "channels" in found.top or train is None:
        return
    files = sorted(p for p in train.rglob("*") if _is_image_name(p.name) and p.is_file())
    sample, modes = files[:: max(1, len(files) // SAMPLE)][:SAMPLE], {}
    for path in sample:
        try:
            with Image.open(path) as image:
                modes[path] = image.mode
            if modes[path] == "RGB" and not equal_channels(path):
                return
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            modes.pop(path, None)
    if not modes or any(mode not in (*GREY_MODES, "RGB") for mode in modes.values()):
        return
    pixels = np.concatenate([load_image(path, STATS_SIZE, 1).ravel() for path in modes]) / 255.0
    mean, std = round(float(pixels.mean()), 4), round(max(float(pixels.std()), 1e-3), 4)
    found.top.update(channels=1, mean=[mean], std=[std])
    grey = sorted(set(modes.values()) - {"RGB"})
    how = ", ".join([f"mode {'/'.join(grey)}"] * bool(grey) + ["RGB with three equal channels"] * ("RGB" in modes.values()))
    found.note(f"grey images ({how} in all {len(modes)} sampled of {len(files)}): "
               f"channels = 1, mean {mean:g} and std {std:g} of their pixels", train)
