"""The submission a competition wants, read from its sample_submission.csv, and the metric assumed.

The sample is the one source of truth: its first column holds the ids (as the test images' file
names, or their stems; pixel contests number the test rows from 1), the rest what a row holds:

    one column of class indices or names           label
    one column of probabilities (0.5, 0.25, ...)   probability of the second class (`positive`)
    one column per class                           probabilities
    space-separated classes ("3 1 4")              top_k, k the number of classes a row holds
    one column of a multi-label download            tags: the image's classes, space-separated (its words
                                                   say names or indices; its default row is no vocabulary)

A column that holds no prediction (Kaggle's Usage of Public/Private, any text that names no class, the
row number) is `copied`: the submission writes it as the sample has it, never a prediction over it.
A binary contest whose sample holds a default 0 or 1 writes a probability when the metric scores
probabilities (auc, logloss); a sample whose ids match no test image is an error naming them. When
several folders are named like test ones and the sample's ids are in more than one (Planet's test-jpg/
and test-jpg-additional/), test_dir lists those, so the layout reads every image the sample names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kaggle_flow.console import shortlist
from kaggle_flow.errors import DataError, FlowError
from kaggle_flow.fileio import read_csv
from kaggle_flow.kinds import KINDS, SampleValues, is_number, recognize, without_sample
from kaggle_flow.metrics import known_metric
from kaggle_flow.table.infer import Found, image_files
from kaggle_flow.table.layouts import find_dir
from kaggle_flow.table.sample_paths import channel_test_samples

if TYPE_CHECKING:
    import pandas as pd

PROBE = 200  # sample rows compared with the test images
DEFAULT_SAMPLE = "sample_submission.csv"


def check_metric(name: str) -> str:
    """`--metric M`: a name of kaggle_flow.metrics.METRICS (map@K for any K), else one line."""
    try:
        return known_metric(name)
    except ValueError as exc:
        raise FlowError(f"--metric: {exc}") from None


def _test_names(found: Found) -> list[str] | None:
    """The test ids a sample may name: the test folders' image files, or the pixel rows' numbers."""
    if found.test_ids is not None:
        return found.test_ids
    test_dir = found.layout.get("test_dir")
    names = [test_dir] if isinstance(test_dir, str) else test_dir if isinstance(test_dir, list) else []
    folders = [folder for name in names if (folder := find_dir(found.root, name)) is not None]
    return [file for folder in folders for file in _folder_names(found, folder)] if folders else None


def _folder_names(found: Found, folder: Path) -> list[str]:
    """The ids one test folder holds: its image files, or the ids its channel files share."""
    channels = found.layout.get("channel_files")
    if isinstance(channels, list):
        return [i for i, _ in channel_test_samples(folder, channels, str(found.layout.get("id_extension", "")))]
    return image_files(folder)


def _spread_tests(found: Found, sample: Path, ids: pd.Series) -> None:
    """Several folders named like test ones whose images the sample names (Planet's test-jpg and
    test-jpg-additional): test_dir lists each, so the layout reads them all."""
    if len(found.test_folders) < 2 or found.layout.get("test_dir") != found.test_folders[0]:
        return
    wanted = {str(i).strip() for i in ids}
    holding = []
    for name in found.test_folders:
        folder = find_dir(found.root, name)
        files = _folder_names(found, folder) if folder is not None else []
        if any(f in wanted or f.rsplit(".", 1)[0] in wanted for f in files):
            holding.append(name)
    if len(holding) > 1 and holding[0] == found.test_folders[0]:
        found.layout["test_dir"] = holding
        for name in holding[1:]:
            found.note(f"test images in {name}/ too: the sample names them", found.root / name)


def _id_form(found: Found, sample: Path, ids: list[str]) -> str:
    names = _test_names(found)
    if names is None:
        return "stem" if found.layout.get("id_extension") else "name"
    name_set = set(names)
    if found.test_ids is not None:
        missing = [i for i in ids if i not in name_set]
        if not missing:
            return "stem"
    else:
        if all(i in name_set for i in ids):
            return "name"
        stems = {n.rsplit(".", 1)[0] for n in names}
        missing = [i for i in ids if i not in stems]
        if not missing:
            return "stem"
    test_dir = found.layout.get("test_dir") or "test"
    where = " and ".join(test_dir) if isinstance(test_dir, list) else test_dir
    raise DataError(f"{sample}: ids that match no test image in {where}: {shortlist(repr(i) for i in missing[:3])}")


def _no_prediction(cells: list[str], classes: list[str]) -> str | None:
    """Why a sample column holds no prediction (text that names no class, the row number), else None."""
    known = set(classes) | {str(i) for i in range(len(classes))}
    for cell in cells:
        if cell and not is_number(cell) and cell not in known and not all(w in known for w in cell.split()):
            return f"text such as '{cell}', not a class"
    numbers = [int(c) if c.isdigit() else -1 for c in cells]
    for first in (0, 1):
        if cells and numbers == list(range(first, first + len(cells))) and numbers[-1] >= len(classes):
            return "the row number"
    return None


def _copied_columns(frame: pd.DataFrame, values: list[str], classes: list[str]) -> dict[str, str]:
    """The value columns of a sample that hold no prediction (Kaggle's Usage, a row number), and why:
    the submission copies them from the sample, as the site takes what its sample holds."""
    copied = {}
    for column in values:
        if column in classes:
            continue
        why = _no_prediction([str(v).strip() for v in frame[column].head(PROBE)], classes)
        if why is not None:
            copied[column] = why
    return copied


def read_sample(found: Found, sample: Path, metric: str | None) -> dict[str, object]:
    """The [submission] keys the sample says."""
    frame = read_csv(sample)
    columns = list(frame.columns)
    if len(columns) < 2:
        raise DataError(f"{sample}: need an id column and at least one value column (found: {', '.join(columns)})")
    _spread_tests(found, sample, frame[columns[0]])
    ids = [str(v).strip() for v in frame[columns[0]].head(PROBE)]
    sub: dict[str, object] = {"id_column": columns[0], "id_form": _id_form(found, sample, ids)}
    if sample.name != DEFAULT_SAMPLE:  # the submission follows the sample's row order
        sub["sample"] = sample.name
    values = columns[1:]
    copied = _copied_columns(frame, values, found.classes) if len(values) > 1 else {}
    if copied and len(copied) == len(values):
        raise DataError(f"{sample}: none of its value columns holds a prediction "
                        f"({'; '.join(f'{c}: {why}' for c, why in copied.items())})")
    if copied:
        values = [c for c in values if c not in copied]
        sub["copied"] = list(copied)
        for column, why in copied.items():
            found.note(f"submission: '{column}' copied from the sample as it is (no prediction: {why})", sample)
    cells = [str(v).strip() for v in frame[values[0]].head(PROBE)]
    kind, keys = recognize(SampleValues(sample, values, cells, found.classes, metric, target_of(found)))
    sub.update(keys)
    found.note(f"submission: {kind.found_line(sub, found.classes)}", sample)
    return sub


def target_of(found: Found) -> str:
    """The target the download's labels say (kaggle_flow.target): "single" unless several an image."""
    return str(found.top.get("target", "single"))


def assumed_submission(found: Found) -> dict[str, object]:
    """The submission written without a sample: the training CSV's columns, one class (or tags) a row."""
    id_col, label_col = found.train_ids
    form = "stem" if found.layout.get("id_extension") or found.test_ids is not None else "name"
    label_form = "index" if found.classes == [str(i) for i in range(len(found.classes))] else "name"
    return {"kind": without_sample(target_of(found)).name, "id_column": id_col, "label_column": label_col,
            "id_form": form, "label_form": label_form}


def default_metric(sub: dict[str, object], target: str = "single") -> tuple[str, str]:
    """The metric assumed when `--metric` is not given, and why: its kind's."""
    return KINDS[str(sub.get("kind", "label"))].assumed_metric(sub, target)
