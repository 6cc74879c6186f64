"""Label files as downloads ship them: a CSV or an .xlsx sheet, one-hot class columns, a label map.

`read_labels` reads a labels file (CSV, or the .xlsx some downloads ship) as strings indexed by the
number an error names; `check_label` refuses a label that pandas reads as missing by default (NaN,
NA, null, None, n/a, ...: the CSVs are read with keep_default_na=False, so the word would become a class); `one_hot_labels` turns one 0/1 column per class (Plant Pathology's
healthy,multiple_diseases,rust,scab) into class indices, a row without exactly one 1 being one line
naming the file and line (`zero_one_cells`: the 1s of a multi-label's 0/1 columns, any number a row);
`read_label_map` reads a JSON of label code -> readable name (Cassava's label_num_to_disease_map.json)
or a CSV of code,name (iMet's labels.csv): the codes stay the classes, the names are for tables and plots.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES  # the words read_csv reads as missing by default

from kaggle_flow.console import shortlist
from kaggle_flow.errors import DataError
from kaggle_flow.fileio import read_csv


def check_label(value: str, where: str) -> str:
    """`value` stripped, unless it is empty or a word pandas reads as missing (then one line naming `where`)."""
    value = value.strip()
    if not value:
        raise DataError(f"{where}: empty label")
    if value in STR_NA_VALUES:
        raise DataError(f"{where}: label '{value}' is a word for a missing value (pandas reads it as NaN), not a class")
    return value


def _cell(value: object) -> str:
    """An Excel cell as the text a CSV would hold: 1 and 1.0 -> '1', empty -> ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_xlsx(file: Path, columns: Sequence[str] = ()) -> pd.DataFrame:
    """The first sheet of an .xlsx as strings (row k of the frame is sheet row k + 2), or a
    one-line DataError: unreadable, or without one of `columns`. Blank rows are dropped."""
    try:
        raw = pd.read_excel(file, sheet_name=0, dtype=object, engine="openpyxl")
    except ImportError:
        raise DataError(f"{file}: reading .xlsx needs openpyxl (pip install openpyxl), or save it as CSV") from None
    except Exception as exc:  # openpyxl raises zipfile, KeyError, ValueError... on a file that is not a workbook
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{file}: not a readable .xlsx workbook: {first}") from None
    frame = raw.apply(lambda column: column.map(_cell))
    frame.columns = [_cell(c) for c in raw.columns]
    frame.index = raw.index + 2  # the sheet's row numbers (row 1 is the header)
    frame = frame[(frame != "").any(axis=1)]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(repr, frame.columns)) or "none"
        raise DataError(f"{file}: missing column {missing[0]!r} (found: {found})")
    return frame


def read_labels(file: Path, columns: Sequence[str]) -> tuple[pd.DataFrame, str]:
    """A labels file (.csv, or .xlsx as some downloads ship it) as strings, indexed by the number
    an error should name, and the word for it: 'line' (CSV) or 'row' (sheet)."""
    suffix = file.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx(file, columns), "row"
    if suffix == ".xls":
        raise DataError(f"{file}: an old-style .xls workbook; save it as .xlsx or .csv")
    frame = read_csv(file, columns)
    frame.index = frame.index + 2
    return frame, "line"


def zero_one_cells(frame: pd.DataFrame, columns: Sequence[str], file: Path, first_line: int = 2) -> np.ndarray:
    """bool [n, len(columns)]: which cells of 0/1 columns hold 1; a value other than 0 and 1 is one
    line naming the file, line and column."""
    cells = frame[list(columns)].apply(lambda column: column.str.strip())
    ones = cells.isin(["1", "1.0"]).to_numpy()
    zeros = cells.isin(["0", "0.0"]).to_numpy()
    bad = ~(ones | zeros)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{file} line {row + first_line}: column '{columns[col]}' holds "
                        f"'{cells.iat[row, col]}' (one-hot columns hold 0 or 1)")
    return ones


def one_hot_labels(frame: pd.DataFrame, columns: Sequence[str], file: Path, first_line: int = 2) -> list[int]:
    """Class indices from one 0/1 column per class (class k = columns[k]); a row with no 1, two 1s
    or a value other than 0 and 1 is one line naming the file and line."""
    ones = zero_one_cells(frame, columns, file, first_line)
    count = ones.sum(axis=1)
    if (count != 1).any():
        row = int(np.flatnonzero(count != 1)[0])
        marked = [c for c, one in zip(columns, ones[row]) if one]
        what = "no class marked 1" if not marked else f"{len(marked)} classes marked 1 ({', '.join(marked)})"
        raise DataError(f"{file} line {row + first_line}: {what} in {', '.join(columns)}; one-hot rows mark exactly one")
    return [int(k) for k in ones.argmax(axis=1)]


def _csv_label_map(file: Path) -> dict[str, str]:
    """Code -> name from the first two columns of a CSV (iMet's labels.csv: attribute_id,attribute_name)."""
    frame = read_csv(file)
    if frame.shape[1] < 2:
        raise DataError(f"{file}: a label map CSV holds a code column and a name column (found: {', '.join(frame.columns)})")
    codes, names = frame.iloc[:, 0].str.strip(), frame.iloc[:, 1].str.strip()
    dup = codes.duplicated().to_numpy()
    if dup.any():
        pos = int(dup.nonzero()[0][0])
        raise DataError(f"{file} line {pos + 2}: code '{codes.iloc[pos]}' is named twice")
    return dict(zip(codes, names))


def read_label_map(file: Path, classes: Sequence[str]) -> dict[str, str]:
    """Class (label code) -> readable name from a JSON object, or a CSV of code,name (iMet's
    labels.csv); every code must be a class."""
    if not file.is_file():
        raise DataError(f"{file}: file not found (layout.label_map)")
    if file.suffix.lower() == ".csv":
        names = _csv_label_map(file)
        unknown = [k for k in names if k not in classes]
        if unknown:
            raise DataError(f"{file}: label code '{unknown[0]}' is not a class ({shortlist(classes, 20)})")
        return names
    try:
        raw = json.loads(file.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{file}: not a readable JSON label map: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{file}: a label map is a JSON object of label code -> name (got {type(raw).__name__})")
    names = {str(k).strip(): str(v) for k, v in raw.items()}
    unknown = [k for k in names if k not in classes]
    if unknown:
        raise DataError(f"{file}: label code '{unknown[0]}' is not a class ({', '.join(classes)})")
    return names
