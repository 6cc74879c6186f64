"""Stratified folds with scikit-learn, and the runs/COMP/folds.csv every later step reads.

Folds have one row per labelled image: `id, label, split, fold`. With K folds, `fold` is the fold in
which the row is validation (0..K-1). With a single hold-out, validation rows have fold 0 and the
rest fold -1, so `--fold 0` means "the hold-out" in both cases.

The default (`flow split` with no flags, or training before any split) is defined here, once: the
download's own validation set (split "valid") as fold 0 when it has one, else a stratified 10%
hold-out (seed 42). An explicit --folds K or --val-size F pools the train and valid rows.

A multi-label table (target "multi": a `labels` column) gets iteratively stratified folds instead
(explore.multifolds): each class's share of images kept in every fold; folds.csv then holds `labels`.

Near twins (explore.twins: images whose perceptual hashes differ in a few bits) within the labelled
images form groups, and a group stays in one fold (StratifiedGroupKFold; multi-label: the groups are
stratified in place of their images), so a copy in training does
not vouch for its twin in validation; `ignore_near` splits them freely. The download's own validation
set is kept as it is: twins across it are only reported.

folds.csv has a sidecar, runs/COMP/folds.json: the fingerprint of the table the folds were made from
and a description for messages. `load_folds` refuses folds made from other data (a re-import, an
edited label, rows added or removed); images `flow eda` finds broken after the split change nothing.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from kaggle_flow import console
from kaggle_flow.errors import DataError, FlowError, NotFoundError
from kaggle_flow.explore import multifolds, twins
from kaggle_flow.fileio import read_csv, write_csv, write_json
from kaggle_flow.table.layouts import labelled
from kaggle_flow.target import TARGETS, Target

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

DEFAULT_VAL_SIZE = 0.1  # share of the labelled images held out when the download has no validation set
DEFAULT_SEED = 42
GRAIN = 20  # a hold-out that keeps near twins together is made of folds of 1/GRAIN of the images
FOLD_COLUMNS = ["id", "label", "split", "fold"]  # multi-label: "labels" for "label" (the target's column)


# --- making folds (pure functions on the table) -----------------------------------------------


def _namer(class_names: Sequence[str] | None) -> Callable[[int], str]:
    return (lambda i: class_names[i]) if class_names else str


def _percent(share: float) -> str:
    return f"{100 * share:g}%"


def target_of(table: pd.DataFrame) -> Target:
    """The target whose label column the table (or folds.csv) holds: `label` one class, `labels` a set."""
    return next((t for t in TARGETS.values() if t.column in table.columns), TARGETS["single"])


def _rows(table: pd.DataFrame) -> pd.DataFrame:
    return labelled(table)[["id", target_of(table).column, "split"]]


def encoded_labels(rows: pd.DataFrame, class_names: Sequence[str] | None) -> tuple[np.ndarray, int]:
    """The rows' labels as their target encodes them, and the number of classes."""
    target = target_of(rows)
    k = len(class_names) if class_names else 1 + max((int(t) for c in rows[target.column] for t in str(c).split()), default=0)
    return target.encode(rows, k), k


def _check_request(folds: int | None, val_size: float | None) -> None:
    if folds is not None and val_size is not None:
        raise FlowError("give either --folds K or --val-size F, not both")
    if folds is not None and folds < 2:
        raise FlowError(f"--folds must be at least 2 (got {folds})")
    if val_size is not None and not 0 < val_size < 1:
        raise FlowError(f"--val-size must be between 0 and 1 (got {val_size})")


def _seeded(seed: int, groups: np.ndarray | None) -> str:
    return f"(seed {seed})" if groups is None else f"(seed {seed}, near twins kept together)"


def _result(rows: pd.DataFrame, fold: np.ndarray, description: str) -> pd.DataFrame:
    out = rows.copy()
    out["fold"] = fold
    out.attrs["description"] = description
    return out


def _kfold(
    labels: np.ndarray, folds: int, seed: int, name: Callable[[int], str], groups: np.ndarray | None = None
) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    counts = pd.Series(labels).value_counts()
    small = counts[counts < folds]
    if len(small):
        raise FlowError(
            f"class '{name(int(small.index[0]))}' has {console.plural(int(small.iloc[0]), 'image')}, "
            f"fewer than the {folds} folds asked for"
        )
    fold = np.full(len(labels), -1, dtype=int)
    if groups is None:
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    else:
        splits = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels, groups)
    for k, (_, val_idx) in enumerate(splits):
        fold[val_idx] = k
    return fold


def _grouped_holdout(labels: np.ndarray, groups: np.ndarray, n_val: int, seed: int) -> np.ndarray:
    """A stratified hold-out of about n_val rows that keeps each group on one side: the first of
    StratifiedGroupKFold's GRAIN folds (fewer with fewer groups, or than the largest class has
    images), as many as the share asks."""
    from sklearn.model_selection import StratifiedGroupKFold

    k = min(GRAIN, len(set(groups)), int(np.bincount(labels).max()))
    if k < 2:
        raise FlowError("the labelled images are all near twins of one another: flow split --ignore-near")
    take = min(max(round(k * n_val / len(labels)), 1), k - 1)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits": fine here
        warnings.simplefilter("ignore", UserWarning)
        held = [val for _, val in splitter.split(np.zeros(len(labels)), labels, groups)][:take]
    fold = np.full(len(labels), -1, dtype=int)
    fold[np.concatenate(held)] = 0
    return fold


def _holdout(
    labels: np.ndarray, val_size: float, seed: int, name: Callable[[int], str], what: str, groups: np.ndarray | None = None
) -> np.ndarray:
    from sklearn.model_selection import StratifiedShuffleSplit

    counts = pd.Series(labels).value_counts()
    small = counts[counts < 2]
    if len(small):
        count = console.plural(int(small.iloc[0]), "image")
        raise FlowError(f"class '{name(int(small.index[0]))}' has {count}, too few to hold one out")
    n_val = int(np.ceil(val_size * len(labels)))
    if n_val < len(counts) or len(labels) - n_val < len(counts):
        raise FlowError(
            f"{what} gives {n_val} validation images of {len(labels)}: "
            f"need at least one per class ({len(counts)}) on each side"
        )
    if groups is not None:
        return _grouped_holdout(labels, groups, n_val, seed)
    fold = np.full(len(labels), -1, dtype=int)
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    _, val_idx = next(splitter.split(np.zeros(len(labels)), labels))
    fold[val_idx] = 0
    return fold


class Stratify(NamedTuple):
    """How a target's labels are split: K folds, a hold-out, the one class each image counts as."""

    kfold: Callable[..., np.ndarray]
    holdout: Callable[..., np.ndarray]
    one_class: Callable[[np.ndarray], np.ndarray]
    word: str  # "stratified": for descriptions


STRATIFY = {
    "single": Stratify(_kfold, _holdout, lambda y: y, "stratified"),
    "multi": Stratify(multifolds.kfold, multifolds.holdout, multifolds.rarest_class, "multi-label stratified"),
}


def default_folds(
    table: pd.DataFrame, class_names: Sequence[str] | None, *, seed: int = DEFAULT_SEED, groups: np.ndarray | None = None
) -> pd.DataFrame:
    """The validation fold used unless one is asked for.

    The download's validation set is the competition's own judgement of a fair validation, so its
    rows are fold 0 and every "train" row is fold -1 (`groups` change nothing). Without one: a
    stratified 10% hold-out that keeps each group (a number per labelled row) on one side.
    """
    rows = _rows(table)
    name = _namer(class_names)
    is_valid = (rows["split"] == "valid").to_numpy()
    labels, k = encoded_labels(rows, class_names)
    target, how = target_of(rows), STRATIFY[target_of(rows).name]
    if not is_valid.any():
        fold = how.holdout(labels, DEFAULT_VAL_SIZE, seed, name, f"the default {_percent(DEFAULT_VAL_SIZE)} hold-out", groups)
        return _result(rows, fold, f"a {how.word} {_percent(DEFAULT_VAL_SIZE)} hold-out {_seeded(seed, groups)} as fold 0")
    only_valid = np.flatnonzero((target.counts(labels[is_valid], k) > 0) & (target.counts(labels[~is_valid], k) == 0))
    if len(only_valid):
        raise FlowError(
            f"class '{name(int(only_valid[0]))}' has no images outside the download's validation set; "
            "pool them: flow split --val-size F or --folds K"
        )
    fold = np.where(is_valid, 0, -1)
    return _result(rows, fold, f"the download's validation set ({console.plural(int(is_valid.sum()), 'image')}) as fold 0")


def make_folds(
    table: pd.DataFrame,
    *,
    folds: int | None = None,
    val_size: float | None = None,
    seed: int | None = None,
    class_names: Sequence[str] | None = None,
    groups: np.ndarray | None = None,
) -> pd.DataFrame:
    """Assign each labelled row a validation fold, stratified by label.

    With neither `folds` nor `val_size`: `default_folds`. With one of them, the train and valid rows
    are pooled. `groups` (a number per labelled row, in the table's order) keeps the rows of a group in
    one fold. The result's description (for messages) is `describe_folds(result)`.
    """
    _check_request(folds, val_size)
    seed = DEFAULT_SEED if seed is None else seed
    if folds is None and val_size is None:
        return default_folds(table, class_names, seed=seed, groups=groups)
    rows = _rows(table)
    labels, _ = encoded_labels(rows, class_names)
    name, how = _namer(class_names), STRATIFY[target_of(rows).name]
    if folds is not None:
        fold = how.kfold(labels, folds, seed, name, groups)
        return _result(rows, fold, f"{folds} {how.word} folds {_seeded(seed, groups)}")
    assert val_size is not None
    fold = how.holdout(labels, val_size, seed, name, f"--val-size {val_size}", groups)
    return _result(rows, fold, f"a {how.word} {_percent(val_size)} hold-out {_seeded(seed, groups)} as fold 0")


def describe_folds(folds: pd.DataFrame) -> str:
    """What the folds are, for messages: "5 stratified folds (seed 42)", "the download's validation
    set (40 images) as fold 0"... (set by make_folds and load_folds)."""
    described = folds.attrs.get("description")
    if described:
        return str(described)
    n_folds = int(folds["fold"].max()) + 1
    return f"{n_folds} folds" if n_folds > 1 else "a hold-out as fold 0"


def fold_counts(folds: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """Validation images per class (rows) and fold (columns); multi-label: an image counts in each of its classes."""
    target, k = target_of(folds), len(class_names)
    y = target.encode(folds, k)
    fold = folds["fold"].to_numpy()
    return pd.DataFrame({f: target.counts(y[fold == f], k) for f in sorted(set(fold.tolist()))}, index=list(class_names))


def train_val(table: pd.DataFrame, folds: pd.DataFrame, fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and validation rows of `table` for one fold (labelled rows only)."""
    n_folds = int(folds["fold"].max()) + 1
    if not 0 <= fold < n_folds:
        raise FlowError(f"fold {fold} does not exist (folds: 0-{n_folds - 1})")
    val_ids = set(folds.loc[folds["fold"] == fold, "id"])
    rows = labelled(table)
    rows = rows[rows["id"].isin(set(folds["id"]))]
    is_val = rows["id"].isin(val_ids)
    return rows[~is_val].reset_index(drop=True), rows[is_val].reset_index(drop=True)


# --- folds.csv and its fingerprint ------------------------------------------------------------


def table_fingerprint(table: pd.DataFrame) -> str:
    """sha1 (16 hex digits) of the labelled rows' sorted (id, label, split).

    Paths and test rows take no part: moving the data folder keeps the folds, a changed label, an
    added or removed image, or an image moved between train and valid does not.
    """
    rows = labelled(table)
    cells = rows[target_of(rows).column]  # one class: its index; a set: the cell ("0 3 16")
    lines = sorted(f"{i}\t{lab if isinstance(lab, str) else int(lab)}\t{s}" for i, lab, s in zip(rows["id"], cells, rows["split"]))
    return hashlib.sha1("\n".join(lines).encode("utf-8")).hexdigest()[:16]


def save_folds(ws: Workspace, folds: pd.DataFrame, description: str) -> Path:
    """Write folds.csv and, beside it, folds.json with the fingerprint and the description.

    `folds` are make_folds' result: one row per labelled image of the table they were made from, so
    their fingerprint is that table's. The old folds.json goes first: a crash between the two writes
    leaves folds.csv without a fingerprint, which load_folds refuses, never one that lies.
    """
    ws.folds_meta_file().unlink(missing_ok=True)
    write_csv(ws.folds_file(), folds[["id", target_of(folds).column, "split", "fold"]])
    write_json(ws.folds_meta_file(), {"fingerprint": table_fingerprint(folds), "description": description})
    return ws.folds_file()


def _stored(file: Path) -> dict[str, Any]:
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _whole_numbers(frame: pd.DataFrame, column: str, file: Path) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        pos = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"{file} line {pos + 2}: {column} '{frame[column].iloc[pos]}' is not a whole number")
    return values.astype(int)


def _with_broken_rows(table: pd.DataFrame, frame: pd.DataFrame, broken: set[str]) -> pd.DataFrame:
    """The labelled rows of `table` and the rows of folds.csv (`frame`) that `flow eda` has since
    found broken: the table the folds were made from, whichever broken images eda finds later."""
    rows = _rows(table)
    columns = list(rows.columns)
    if not broken or not set(columns) <= set(frame.columns):
        return rows
    gone = frame[frame["id"].isin(broken) & ~frame["id"].isin(set(rows["id"]))]
    return pd.concat([rows, gone[columns]], ignore_index=True)


def load_folds(ws: Workspace, table: pd.DataFrame) -> pd.DataFrame:
    """folds.csv, checked against the table it must have been made from.

    Pass the table as `ws.table()` returns it (strict or quiet or keep_test, it has the same
    labelled rows, or strict fails). Images `flow eda` found broken are left out of it, but their
    rows in folds.csv count as the table's, so running `flow eda` after `flow split` keeps the folds
    (training leaves the broken rows out); an edited label, an added or removed image does not.
    """
    file = ws.folds_file()
    if not file.is_file():
        raise NotFoundError(f"{file}: no folds yet; run flow split {ws.comp.name} first")
    meta = _stored(ws.folds_meta_file())
    frame = read_csv(file, ["id", "fold"])
    if meta.get("fingerprint") != table_fingerprint(_with_broken_rows(table, frame, ws.broken_ids())):
        raise DataError(f"{file} was made from other data; run flow split {ws.comp.name} again")
    frame["fold"] = _whole_numbers(frame, "fold", file)
    if "label" in frame:
        frame["label"] = pd.to_numeric(frame["label"], errors="coerce").astype("Int64")
    frame.attrs["description"] = meta.get("description", "")
    return frame


def ensure_folds(ws: Workspace, table: pd.DataFrame) -> pd.DataFrame:
    """folds.csv when there is one (and it fits the table); else the default, saved and announced."""
    if ws.folds_file().is_file():
        return load_folds(ws, table)
    folds = default_folds(table, ws.class_names())
    file = save_folds(ws, folds, describe_folds(folds))
    console.info(f"No folds yet: made {describe_folds(folds)} in {file}")
    return folds


def split_competition(
    ws: Workspace,
    *,
    folds: int | None = None,
    val_size: float | None = None,
    seed: int | None = None,
    strict: bool = False,
    near: int | None = None,
    ignore_near: bool = False,
) -> pd.DataFrame:
    """`flow split`: make folds from the competition's table (the default without folds/val_size)
    and save them; broken images are left out (an error with `strict`). Groups of near twins stay in
    one fold unless `ignore_near`; what was done with them is result.attrs["near_note"]."""
    table = ws.table(strict=strict)
    groups, note = None, ""
    if not ignore_near:
        _check_request(folds, val_size)  # before the hashing, which may take a while
        found = twins.near_twin_groups(labelled(table), ws.hashes_file(), near)
        if folds is None and val_size is None and (labelled(table)["split"] == "valid").any():
            note = twins.leak_note(labelled(table)["split"], found)
        else:
            share = 1 / folds if folds else (val_size or DEFAULT_VAL_SIZE)
            rows = _rows(table)
            one_class = STRATIFY[target_of(rows).name].one_class(encoded_labels(rows, ws.class_names())[0])
            groups, note = twins.keep_together(found, one_class, share)
    result = make_folds(table, folds=folds, val_size=val_size, seed=seed, class_names=ws.class_names(), groups=groups)
    save_folds(ws, result, describe_folds(result))
    result.attrs["near_note"] = note
    return result
