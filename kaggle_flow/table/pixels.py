"""Pixel CSVs (Digit Recognizer): one grey image a row, written out once as PNG files.

    train_csv   label,pixel0,...   (the label column, then image_side * image_side values 0-255)
    test_csv    pixel0,...         (the values only)

Each CSV's rows become DATA/<folder>/<row>.png, row being the 1-based row number: the sample's
ImageId 1..N is then the stem of the test image of that row (id_form "stem"). A folder is written
whole into a staging folder beside it and renamed into place, with a fingerprint file (the CSV's
SHA-1, the side, the label column) that makes the next read of the same CSV write nothing. The
fingerprint also marks the folder as flow's: a changed CSV replaces a folder that holds one (or an
empty one), and a folder of the user's at that name is one line and stays as it was. A row
with the wrong number of values, or a value that is not a whole number 0-255, is one line naming
the file, the line and the column.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from PIL import Image

from kaggle_flow.errors import DataError
from kaggle_flow.fileio import disk_full_as_error, replaceable, staged_folder

FINGERPRINT = ".pixels"  # hidden: no layout counts it as an image
CHUNK_ROWS = 2000  # rows validated and written at a time: a 42,000-row CSV never sits in memory as numbers


class PixelImage(NamedTuple):
    """One row written out: its file name, path, label text (None for test rows) and CSV line."""

    name: str
    path: Path
    label: str | None
    line: int


def _fingerprint(csv: Path, side: int, label_column: str | None) -> str:
    digest = hashlib.sha1()
    with csv.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"{digest.hexdigest()} side={side} label={label_column or '-'}\n"


def _chunks(csv: Path) -> Iterator[pd.DataFrame]:
    """The CSV in chunks, header names stripped; a row with too many values is one line."""
    try:
        for chunk in pd.read_csv(csv, chunksize=CHUNK_ROWS, encoding="utf-8-sig", dtype=str, keep_default_na=False):
            chunk.columns = [str(c).strip() for c in chunk.columns]
            yield chunk
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found:
            expected, line, saw = found.groups()
            raise DataError(f"{csv} line {line}: {saw} values, expected {expected} (one per column of the header)") from None
        raise DataError(f"{csv}: not a readable CSV: {str(exc).strip().splitlines()[0]}") from None
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{csv}: not a readable CSV: {str(exc).strip().splitlines()[0]}") from None


def pixel_columns(csv: Path, columns: list[str], side: int, label_column: str | None) -> list[str]:
    """The pixel columns of a header: every column but the label, side * side of them."""
    if label_column is not None and label_column not in columns:
        found = ", ".join(map(repr, columns[:5])) + (", ..." if len(columns) > 5 else "")
        raise DataError(f"{csv}: missing column '{label_column}' (found: {found})")
    pixels = [c for c in columns if c != label_column]
    if len(pixels) != side * side:
        raise DataError(f"{csv} line 1: {len(pixels)} pixel columns, expected {side * side} "
                        f"({side}x{side} images: layout.image_side = {side})")
    return pixels


def _values_on_line(csv: Path, line: int) -> int:
    """The number of comma-separated values on one line of the file (pixel CSVs quote nothing)."""
    with csv.open(encoding="utf-8-sig") as fh:
        for number, text in enumerate(fh, start=1):
            if number == line:
                return len(text.rstrip("\r\n").split(","))
    return 0


def _values(csv: Path, chunk: pd.DataFrame, pixels: list[str], first_line: int) -> np.ndarray:
    """The chunk's pixels as uint8 rows; the first bad cell (row by row) is one line."""
    text = chunk[pixels]
    numbers = text.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(numbers) | (numbers < 0) | (numbers > 255) | (numbers != np.floor(numbers))
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        where = f"{csv} line {first_line + row}"
        raw = text.iat[row, col]
        given = _values_on_line(csv, first_line + row) if pd.isna(raw) or raw == "" else chunk.shape[1]
        if given != chunk.shape[1]:  # pandas pads a short row with empty cells
            raise DataError(f"{where}: {given} values, expected {chunk.shape[1]} (one per column of the header)")
        raise DataError(f"{where}, column '{pixels[col]}': '{str(raw).strip()}' is not a pixel value (a whole number 0-255)")
    return numbers.astype(np.uint8)


def _write(csv: Path, staging: Path, side: int, label_column: str | None) -> list[PixelImage]:
    rows: list[PixelImage] = []
    pixels: list[str] = []
    for chunk in _chunks(csv):
        pixels = pixels or pixel_columns(csv, list(chunk.columns), side, label_column)
        first_line = len(rows) + 2
        values = _values(csv, chunk, pixels, first_line)
        labels = chunk[label_column].str.strip().tolist() if label_column else [None] * len(chunk)
        for k, (image, label) in enumerate(zip(values, labels)):
            name = f"{first_line + k - 1}.png"
            Image.fromarray(image.reshape(side, side), "L").save(staging / name, compress_level=1)
            rows.append(PixelImage(name, staging / name, label, first_line + k))
    return rows


def _written(csv: Path, folder: Path, label_column: str | None) -> list[PixelImage]:
    """The rows of a folder already written from this CSV: only the label column is read again."""
    wanted = (lambda c: str(c).strip() == label_column) if label_column else [0]  # test: one column to count rows
    frame = pd.read_csv(csv, encoding="utf-8-sig", dtype=str, keep_default_na=False, usecols=wanted)
    labels = frame.iloc[:, 0].str.strip().tolist() if label_column else [None] * len(frame)
    return [PixelImage(f"{n}.png", folder / f"{n}.png", label, n + 1) for n, label in enumerate(labels, start=1)]


def write_pixel_images(csv: Path, folder: Path, side: int, label_column: str | None) -> list[PixelImage]:
    """The CSV's rows as PNG files in `folder` (written once per CSV content), one PixelImage a row."""
    if not csv.is_file():
        raise DataError(f"{csv}: file not found")
    mark = _fingerprint(csv, side, label_column)
    stamp = folder / FINGERPRINT
    if not replaceable(folder, FINGERPRINT):
        raise DataError(f"{folder}: a folder flow did not write (no {FINGERPRINT} file in it): the PNGs of {csv.name} "
                        "go into a folder of their own; move it, or name a new folder in the competition's layout")
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == mark:
        return _written(csv, folder, label_column)
    with disk_full_as_error(folder.parent, f"the images of {csv.name}"):
        folder.parent.mkdir(parents=True, exist_ok=True)
        with staged_folder(folder, "pixels", FINGERPRINT) as staging:
            rows = _write(csv, staging, side, label_column)
            (staging / FINGERPRINT).write_text(mark, encoding="utf-8")
    return [PixelImage(r.name, folder / r.name, r.label, r.line) for r in rows]
