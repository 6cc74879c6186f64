"""Submission files: test probabilities -> the exact CSV the competition site accepts.

Pure functions on pandas tables (no paddle): `format_submission` builds the frame in the
competition's format, `check_submission` refuses anything the site would reject, and
`write_submission` checks first and only then writes (temp file, then rename), so a failed check
or an interrupted submit never leaves a CSV behind.

Format, from the competition's `[submission]` table:

    id_column, label_column   the two columns, in this order
    id_form                   "name": test_0001.jpg (file name) ; "stem": test_0001
    label_form                "index": 3 ; "name": the class name
    sample                    sample_submission.csv: row order to follow, when the file exists
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kaggle_flow.competition import Competition
from kaggle_flow.errors import DataError, FlowError, NotFoundError
from kaggle_flow.fileio import atomic_path, read_csv, write_json

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

PROBS_FILE = "test_probs.npy"


def submission_id(test_id: str, id_form: str) -> str:
    """The id the site expects for a test image (its id in the table is relative to the test folder)."""
    path = PurePosixPath(test_id)
    return path.stem if id_form == "stem" else path.name


def expected_ids(comp: Competition, test_rows: pd.DataFrame) -> list[str]:
    """Submission ids of the test rows, in table order."""
    return [submission_id(i, comp.submission.id_form) for i in test_rows["id"]]


def sample_file(comp: Competition, data_dir: Path) -> Path | None:
    """The competition's sample submission under `data_dir`, when it has one and it exists."""
    if not comp.submission.sample:
        return None
    file = Path(data_dir) / comp.submission.sample
    return file if file.is_file() else None


def _check_columns(comp: Competition, columns: list[str], where: str) -> None:
    wanted = [comp.submission.id_column, comp.submission.label_column]
    unexpected = [c for c in columns if c not in wanted]
    if unexpected:
        raise FlowError(
            f"{where}: unexpected column '{unexpected[0]}' (the submission has {', '.join(wanted)})"
        )
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise FlowError(f"{where}: missing column '{missing[0]}' (the submission has {', '.join(wanted)})")


def read_sample(comp: Competition, data_dir: Path) -> pd.DataFrame | None:
    """The sample submission (all strings), its columns checked; None when there is none."""
    file = sample_file(comp, data_dir)
    if file is None:
        return None
    sample = read_csv(file)
    _check_columns(comp, [str(c) for c in sample.columns], str(file))
    sample.attrs["file"] = str(file)
    return sample


def check_probs(comp: Competition, probs: np.ndarray, n_test: int) -> None:
    """Probabilities must be one row per test image and one column per class."""
    if probs.ndim != 2:
        raise FlowError(f"probabilities must be a table of images x classes (got shape {probs.shape})")
    if probs.shape[0] != n_test:
        raise FlowError(f"probabilities for {probs.shape[0]} images, but the test set has {n_test}")
    if probs.shape[1] != comp.num_classes:
        raise FlowError(
            f"probabilities for {probs.shape[1]} classes, but '{comp.name}' has {comp.num_classes} classes"
        )


def format_submission(
    comp: Competition, test_rows: pd.DataFrame, probs: np.ndarray, sample: pd.DataFrame | None
) -> pd.DataFrame:
    """The submission frame: the arg-max class of each test image, in the site's format and row order.

    Args:
        comp: the competition (its `submission` table gives columns, id and label form).
        test_rows: the test rows of the canonical table (ids relative to the test folder).
        probs: [len(test_rows), num_classes] probabilities, in row order.
        sample: the sample submission (see `read_sample`); its row order is followed.

    Example:
        >>> format_submission(comp, table[table.split == "test"], probs, read_sample(comp, data_dir))
    """
    probs = np.asarray(probs)
    if len(test_rows) == 0:
        raise FlowError(f"no test images for '{comp.name}' (layout.test_dir = {comp.layout.test_dir!r})")
    check_probs(comp, probs, len(test_rows))
    sub = comp.submission
    ids = expected_ids(comp, test_rows)
    pred = probs.argmax(axis=1)
    labels: list[object] = [comp.classes[i] for i in pred] if sub.label_form == "name" else [int(i) for i in pred]
    frame = pd.DataFrame({sub.id_column: ids, sub.label_column: labels})
    if sample is None:
        return frame
    where = sample.attrs.get("file", sub.sample or "sample submission")
    _check_columns(comp, [str(c) for c in sample.columns], where)
    by_id = frame.drop_duplicates(sub.id_column).set_index(sub.id_column)[sub.label_column]
    order = sample[sub.id_column].astype(str).str.strip()
    unknown = ~order.isin(by_id.index)
    if unknown.any():
        pos = int(unknown.to_numpy().nonzero()[0][0])
        raise FlowError(f"{where} line {pos + 2}: id '{order.iloc[pos]}' has no test image (missing, or broken)")
    listed = set(order)
    unlisted = [i for i in ids if i not in listed]
    if unlisted:
        raise FlowError(f"{where}: test image '{unlisted[0]}' is not listed ({len(unlisted)} test images are not)")
    return pd.DataFrame({sub.id_column: order.to_list(), sub.label_column: by_id.loc[order].to_list()})


def _line(pos: int) -> int:
    """CSV line of a frame row (line 1 is the header)."""
    return pos + 2


def check_submission(comp: Competition, frame: pd.DataFrame, expected: list[str]) -> None:
    """Refuse a submission the site would reject: raise FlowError naming the line and value.

    Checks, in order: exactly the two columns; no empty value; every id once (no duplicate, none
    missing, none extra); every label in the class set (an index 0..K-1 or a class name).

    Example:
        >>> check_submission(comp, frame, expected_ids(comp, test_rows))
    """
    sub = comp.submission
    _check_columns(comp, [str(c) for c in frame.columns], "submission")
    frame = frame[[sub.id_column, sub.label_column]]
    for column in (sub.id_column, sub.label_column):
        values = frame[column]
        empty = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
        if empty.any():
            pos = int(empty.nonzero()[0][0])
            raise FlowError(f"submission line {_line(pos)}: empty value in column '{column}'")
    ids = frame[sub.id_column].astype(str)
    dup = ids.duplicated(keep="first").to_numpy()
    if dup.any():
        pos = int(dup.nonzero()[0][0])
        first = int((ids == ids.iloc[pos]).to_numpy().nonzero()[0][0])
        raise FlowError(
            f"submission line {_line(pos)}: duplicate id '{ids.iloc[pos]}' (first on line {_line(first)})"
        )
    wanted = set(expected)
    present = set(ids)
    missing = [i for i in expected if i not in present]
    if missing:
        raise FlowError(f"submission: test id '{missing[0]}' is missing ({len(missing)} test ids have no row)")
    extra = (~ids.isin(wanted)).to_numpy()
    if extra.any():
        pos = int(extra.nonzero()[0][0])
        raise FlowError(f"submission line {_line(pos)}: id '{ids.iloc[pos]}' is not a test image")
    labels = frame[sub.label_column]
    if sub.label_form == "name":
        allowed = set(comp.classes)
        what = f"classes: {', '.join(comp.classes)}"
    else:
        allowed = {str(i) for i in range(comp.num_classes)}
        what = f"a class index 0-{comp.num_classes - 1}"
    text = labels.astype(str).str.strip()
    bad = (~text.isin(allowed)).to_numpy()
    if bad.any():
        pos = int(bad.nonzero()[0][0])
        raise FlowError(f"submission line {_line(pos)}: label '{labels.iloc[pos]}' is not a class ({what})")


def submission_name(run_name: str, when: float | None = None) -> str:
    """TIME_RUN.csv: sorts by time, says which run made it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when if when is not None else time.time()))
    return f"{stamp}_{run_name}.csv"


def save_probs(run_dir: Path, probs: np.ndarray) -> Path:
    """Save test probabilities as run_dir/test_probs.npy (temp file, then rename)."""
    out = Path(run_dir) / PROBS_FILE
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(probs, dtype=np.float32))
    return out


def load_probs(file: Path, n_test: int, comp: Competition) -> np.ndarray:
    """Read a saved probability file and check it matches the test set."""
    file = Path(file)
    if not file.is_file():
        raise FlowError(f"{file}: probability file not found")
    try:
        probs = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FlowError(f"{file}: not a NumPy probability file: {exc}") from None
    try:
        check_probs(comp, probs, n_test)
    except FlowError as exc:
        raise FlowError(f"{file}: {exc}") from None
    return probs


def write_submission(
    comp: Competition,
    test_rows: pd.DataFrame,
    probs: np.ndarray,
    sample: pd.DataFrame | None,
    *,
    submissions_dir: Path,
    run_dir: Path,
    when: float | None = None,
    keep_probs: bool = True,
) -> tuple[Path, pd.DataFrame]:
    """Format, check, then write submissions/COMP/TIME_RUN.csv and save run_dir/test_probs.npy.

    The check runs before anything is written: a failed check is an error and leaves no file.
    `keep_probs=False` skips saving the probabilities (they came from a saved file already).

    Example:
        >>> path, frame = write_submission(comp, test_rows, probs, sample,
        ...                                submissions_dir=ws.submissions_dir, run_dir=run_dir)
    """
    frame = format_submission(comp, test_rows, probs, sample)
    check_submission(comp, frame, expected_ids(comp, test_rows))
    out = Path(submissions_dir) / submission_name(Path(run_dir).name, when)
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    if keep_probs:
        save_probs(run_dir, probs)
    return out, frame


def class_distribution(comp: Competition, labels: np.ndarray) -> pd.Series:
    """Images per class (all classes, zero included), indexed by class name."""
    counts = pd.Series(np.asarray(labels, dtype=int)).value_counts().reindex(range(comp.num_classes), fill_value=0)
    counts.index = comp.classes
    return counts


# --- predicting the test set with a run, an ensemble of runs, or the folds of a CV run ---------------

ENSEMBLE_PREFIX = "ensemble-"


def read_config(run_dir: Path) -> dict[str, Any]:
    """A run folder's config.json (an ensemble folder's lists its members)."""
    from kaggle_flow.runs import load_config

    return load_config(Path(run_dir))


def is_ensemble(config: dict[str, Any]) -> bool:
    return config.get("kind") == "ensemble"


def cv_score(run_dir: Path) -> float | None:
    """The run's best validation score from summary.json (None when there is none)."""
    from kaggle_flow.runs import load_summary

    score = load_summary(Path(run_dir)).get("best_score")
    try:
        return None if score is None else float(score)
    except (TypeError, ValueError):
        return None


def predict_run(run_dir: Path, test_rows: pd.DataFrame, comp: Competition, *, tta: bool = False) -> np.ndarray:
    """Test probabilities of a run (fold-averaged for a CV run, member-averaged for an ensemble folder)."""
    from kaggle_flow.predict import check_run, predict_probs

    config = read_config(run_dir)
    if is_ensemble(config):
        members = [Path(run_dir).parent / name for name in config.get("members", [])]
        return average_runs(members, test_rows, comp, tta=tta)
    check_run(Path(run_dir), comp)
    if len(test_rows) == 0:
        raise FlowError(f"no test images for '{comp.name}' (layout.test_dir = {comp.layout.test_dir!r})")
    probs = np.asarray(predict_probs(Path(run_dir), test_rows, tta=tta))
    check_probs(comp, probs, len(test_rows))
    return probs


def average_runs(run_dirs: list[Path], test_rows: pd.DataFrame, comp: Competition, *, tta: bool = False) -> np.ndarray:
    """The mean of the runs' test probabilities (every run checked before any is predicted)."""
    from kaggle_flow.predict import check_run

    if not run_dirs:
        raise FlowError("an ensemble needs at least one run")
    for run_dir in run_dirs:
        if not is_ensemble(read_config(run_dir)):
            check_run(Path(run_dir), comp)
    return np.mean([predict_run(r, test_rows, comp, tta=tta) for r in run_dirs], axis=0)


def make_ensemble(runs_dir: Path, run_dirs: list[Path], comp: Competition, *, tta: bool = False) -> Path:
    """runs/COMP/ensemble-TIME/ with a config.json listing its members (relative to runs/COMP)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(runs_dir) / f"{ENSEMBLE_PREFIX}{stamp}"
    n = 1
    while out.exists():
        n += 1
        out = Path(runs_dir) / f"{ENSEMBLE_PREFIX}{stamp}-{n}"
    members = [os.path.relpath(Path(r).resolve(), Path(runs_dir).resolve()) for r in run_dirs]
    out.mkdir(parents=True)
    write_json(
        out / "config.json",
        {"kind": "ensemble", "competition": comp.name, "classes": comp.classes, "members": members, "tta": tta},
    )
    return out


def read_test_rows(ws: Workspace, *, strict: bool = False, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The test rows of the workspace's table (or of `table`); a one-line error when there are none."""
    table = ws.table(strict=strict, keep_test=True) if table is None else table
    test = table[table["split"] == "test"].reset_index(drop=True)
    if test.empty:
        where = ws.data_dir / ws.comp.layout.test_dir if ws.comp.layout.test_dir else ws.data_dir
        raise DataError(f"{where}: no test images for '{ws.comp.name}'")
    return test


def cv_run(ws: Workspace, run: str | None) -> Path:
    """The cross-validation run for --folds all: the one named (or the parent of a fold), else the best."""
    from kaggle_flow.runs import (
        fold_dirs,
        has_weights,
        list_runs,
        load_summary,
        resolve_run,
    )

    hint = f"train one with `flow train {ws.comp.name} --folds all`"
    if run is not None:
        run_dir = resolve_run(ws, run)
        for candidate in (run_dir, run_dir.parent):
            if fold_dirs(candidate):
                return candidate
        raise FlowError(f"{run_dir}: not a cross-validation run; {hint}")
    parents = [Path(p) for p in list_runs(ws.runs_dir)["path"] if fold_dirs(Path(p)) and has_weights(Path(p))]
    if not parents:
        raise NotFoundError(f"{ws.runs_dir}: no cross-validation run; {hint}")
    scores = {p: load_summary(p).get("best_score") for p in parents}
    return max(parents, key=lambda p: (scores[p] is not None, float(scores[p] or 0.0), p.name))


@dataclass(frozen=True)
class Prediction:
    """Test probabilities and the run folder they belong to (a new ensemble folder for --ensemble)."""

    run_dir: Path
    probs: np.ndarray
    new_ensemble: bool = False


def predict_test(
    ws: Workspace,
    test: pd.DataFrame,
    *,
    run: str | None = None,
    tta: bool = False,
    ensemble: str | None = None,
    folds: str | None = None,
) -> Prediction:
    """Predict the test rows with the run the options pick: a run, the best run, an ensemble, a CV run.

    With no run named, the run with the best validation score (summary.json best_score) predicts.

    Example:
        >>> predict_test(ws, read_test_rows(ws), ensemble="20250101-120000-smallcnn-f0,20250101-130000-resnet18-f0")
    """
    from kaggle_flow.runs import resolve_run

    if folds is not None and folds != "all":
        raise FlowError(f"--folds takes 'all' (got '{folds}')")
    if ensemble is not None:
        if run is not None or folds is not None:
            raise FlowError("--ensemble lists its runs: leave out --run and --folds")
        names = [n.strip() for n in ensemble.split(",") if n.strip()]
        if len(names) < 2:
            raise FlowError(f"--ensemble needs at least two runs (got '{ensemble}')")
        members = [resolve_run(ws, name) for name in names]
        probs = average_runs(members, test, ws.comp, tta=tta)
        return Prediction(make_ensemble(ws.runs_dir, members, ws.comp, tta=tta), probs, new_ensemble=True)
    run_dir = cv_run(ws, run) if folds == "all" else resolve_run(ws, run, best=True)
    return Prediction(run_dir, predict_run(run_dir, test, ws.comp, tta=tta))
