"""Label cells as downloads write them: one class a row, or a set of tags a row (target = "multi").

A single-label CSV holds one class a row: its index or its name (`layout.label_form`), or one 0/1
column per class with exactly one 1 (`layout.label_columns`). A multi-label CSV holds the image's
classes as space-separated tokens in one cell, indices or names as the form says:

    Planet                  image_name,tags          agriculture clear primary water
    Human Protein Atlas     Id,Target                0 5 25
    iMet                    id,attribute_ids         147 616 813   (names: labels.csv, layout.label_map)
    Plant Pathology 2021    image,labels             scab frog_eye_leaf_spot

or one 0/1 column per class with any number of 1s (a row of 0s: an image with no class). The
canonical table keeps a multi-label image's classes as their indices, ascending, space-separated
(target.py). A tag that is no class is one line naming the file, line and value; so is an empty
text cell (a blank is a missing label more often than an image with none; one-hot 0s say "none").
A cell of several space-separated labels is never read as one class of a single-label competition:
it is one line that says to set target = "multi".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_flow.competition import Competition
from kaggle_flow.console import shortlist
from kaggle_flow.errors import DataError
from kaggle_flow.table.labelfiles import check_label, one_hot_labels, zero_one_cells

CLASSES_SHOWN = 20  # classes an unknown-label line lists before "and N more"


def _classes_hint(comp: Competition, form: str) -> str:
    if form == "name":
        return f"classes: {shortlist(comp.classes, CLASSES_SHOWN)}"
    return f"a class index 0-{comp.num_classes - 1}"


def _class_index(token: str, comp: Competition, form: str) -> int | None:
    if form == "name":
        return comp.classes.index(token) if token in comp.classes else None
    return int(token) if token.isdigit() and int(token) < comp.num_classes else None


def parse_label(value: str, comp: Competition, form: str, where: str) -> int:
    """The class index of a single-label cell; one line naming `where` otherwise."""
    value = check_label(value, where)  # empty, NaN, None, ...: never a class
    index = _class_index(value, comp, form)
    if index is not None:
        return index
    tokens = value.split()
    if len(tokens) > 1:
        raise DataError(f"{where}: label '{value}' holds {len(tokens)} space-separated labels, not one class; "
                        f"a competition of several labels an image says target = \"multi\" in its TOML")
    raise DataError(f"{where}: unknown label '{value}' ({_classes_hint(comp, form)})")


def parse_tags(value: str, comp: Competition, form: str, where: str) -> str:
    """A multi-label cell as the canonical table keeps it: class indices, ascending, space-separated."""
    value = check_label(value, where)  # a blank cell is a missing label, never an image with none
    indices = set()
    for token in value.split():
        index = _class_index(token, comp, form)
        if index is None:
            raise DataError(f"{where}: unknown label '{token}' in '{value}' ({_classes_hint(comp, form)})")
        indices.add(index)
    return " ".join(str(i) for i in sorted(indices))


def _one_hot_columns(comp: Competition, file: Path) -> list[str]:
    columns = comp.layout.label_columns
    if len(columns) != comp.num_classes:
        raise DataError(f"{comp.path}: layout.label_columns names {len(columns)} columns "
                        f"for {comp.num_classes} classes (one per class, in class order)")
    return columns


def _single_labels(frame: pd.DataFrame, file: Path, comp: Competition) -> list[int]:
    """Class indices of a training CSV: one-hot label_columns, or the label column."""
    layout = comp.layout
    if layout.label_columns:
        return one_hot_labels(frame, _one_hot_columns(comp, file), file)
    return [parse_label(value, comp, layout.label_form, f"{file} line {line}")
            for line, value in enumerate(frame[layout.label_column], start=2)]


def _multi_labels(frame: pd.DataFrame, file: Path, comp: Competition) -> list[str]:
    """The label sets of a training CSV: 0/1 label_columns with any number of 1s, or the tags column."""
    layout = comp.layout
    if layout.label_columns:
        ones = zero_one_cells(frame, _one_hot_columns(comp, file), file)
        return [" ".join(str(i) for i in np.flatnonzero(row)) for row in ones]
    return [parse_tags(value, comp, layout.label_form, f"{file} line {line}")
            for line, value in enumerate(frame[layout.label_column], start=2)]


CSV_LABELS: dict[str, Callable[[pd.DataFrame, Path, Competition], Sequence[int] | Sequence[str]]] = {
    "single": _single_labels,
    "multi": _multi_labels,
}  # by kaggle_flow.target name: what a training CSV's label cells become in the canonical table


def csv_labels(frame: pd.DataFrame, file: Path, comp: Competition) -> Sequence[int] | Sequence[str]:
    """Each row's label as the competition's target keeps it (single: an index; multi: "0 3 16")."""
    return CSV_LABELS[comp.target](frame, file, comp)


def classes_present(labels: Iterable[int | str | None]) -> set[int]:
    """The class indices a table's labels hold (an index, or a set of them; None for a test row)."""
    present: set[int] = set()
    for label in labels:
        if label is not None:
            present.update(int(t) for t in str(label).split())
    return present
