"""A submission's cells as the kinds write and read them: numbers, class labels, probabilities.

Shared by the entries of kinds.py; each refusal is one line naming the CSV line (line 1 is the header)
and the value. pandas is imported by the one helper that parses numbers, so `flow --help`, which
loads the competitions (and through them the kinds), does not load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kaggle_flow.errors import DataError, FlowError

if TYPE_CHECKING:
    import pandas as pd

    from kaggle_flow.competition import Competition


def csv_line(pos: int) -> int:
    """CSV line of a frame row (line 1 is the header)."""
    return pos + 2


def is_number(text: str) -> bool:
    """Whether a sample's cell reads as a number (0.5, 3, 1e-3)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def as_numbers(values: pd.Series) -> np.ndarray:
    """A column's cells as floats, NaN where a cell is not a number."""
    import pandas as pd  # pandas: kept out of `flow --help`, which loads this module through competition.py

    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def class_label(comp: Competition, index: int) -> int | str:
    """A class as the submission writes it: its index, or its name (`[submission] label_form`)."""
    return comp.classes[index] if comp.submission.label_form == "name" else int(index)


def allowed_labels(comp: Competition) -> tuple[set[str], str]:
    """The labels the format writes, and how the check before writing says so."""
    if comp.submission.label_form == "name":
        return set(comp.classes), f"classes: {', '.join(comp.classes)}"
    return {str(i) for i in range(comp.num_classes)}, f"a class index 0-{comp.num_classes - 1}"


def label_index(comp: Competition) -> tuple[dict[str, int], str]:
    """The labels the submission form writes -> class index, and how `flow score` says what is allowed."""
    if comp.submission.label_form == "name":
        return {name: i for i, name in enumerate(comp.classes)}, f"a class name of '{comp.name}': {', '.join(comp.classes)}"
    hint = f"a class index 0-{comp.num_classes - 1}, as the submission format of '{comp.name}' writes labels"
    return {str(i): i for i in range(comp.num_classes)}, hint


def checked_probabilities(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """[n, len(columns)] probabilities of a submission about to be written; a FlowError naming the
    line, column and value outside [0, 1] (NaN too)."""
    values = np.empty((len(frame), len(columns)))
    for c, column in enumerate(columns):
        raw = frame[column]
        numbers = as_numbers(raw)
        bad = ~((numbers >= 0) & (numbers <= 1))  # NaN too
        if bad.any():
            pos = int(bad.nonzero()[0][0])
            raise FlowError(
                f"submission line {csv_line(pos)}: column '{column}' value '{raw.iloc[pos]}' is not a probability in [0, 1]"
            )
        values[:, c] = numbers
    return values


def submitted_probabilities(frame: pd.DataFrame, columns: list[str], file: Path) -> np.ndarray:
    """[n, len(columns)] probabilities of a file `flow score` reads; a one-line error naming the line,
    column and value outside [0, 1]."""
    out = np.empty((len(frame), len(columns)))
    for c, column in enumerate(columns):
        numbers = as_numbers(frame[column].str.strip())
        bad = ~((numbers >= 0) & (numbers <= 1))
        if bad.any():
            pos = int(bad.nonzero()[0][0])
            raise DataError(f"{file} line {pos + 2}: column '{column}' value '{frame[column].iloc[pos]}' is not a probability in [0, 1]")
        out[:, c] = numbers
    return out


def text_cell(value: object) -> str:
    """A text cell as written: NaN (an empty cell read by pandas) as ""."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
