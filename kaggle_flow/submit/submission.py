"""Submission files: test probabilities -> the exact CSV the competition site accepts.

Pure functions on pandas tables (no paddle): `format_submission` builds the frame in the
competition's format, `check_submission` refuses anything the site would reject, and
`write_submission` checks first and only then writes (temp file, then rename), so a failed check
or an interrupted submit never leaves a CSV behind. `submit` is `flow submit`: the test prediction
(predict.py, imported only when it predicts) or saved probabilities (testset.py), the checked CSV
inside its ledger row's transaction (ledger.recording: row pending, CSV renamed, row settled), then
the run's test_probs.npy.

Format, from the competition's `[submission]` table (competition.SubmissionFormat):

    kind                      label | probability | probabilities | top_k: what a row holds
    id_column, label_column   the id column, then the value column (probabilities: `columns`, one per class)
    id_form                   "name": test_0001.jpg (file name) ; "stem": test_0001
    label_form                "index": 3 ; "name": the class name (label, top_k)
    positive, k               the class of `probability` ; the classes per row of `top_k`
    sample                    sample_submission.csv: columns and row order to follow, when the file exists
    copied                    the sample's columns that hold no prediction (Usage): written as the sample has them
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kaggle_flow import console
from kaggle_flow.competition import Competition
from kaggle_flow.errors import DataError, FlowError, NotFoundError
from kaggle_flow.fileio import atomic_path, ensure_free_space, read_csv, reap_temps
from kaggle_flow.kinds import KINDS
from kaggle_flow.runs import RunFolder, load_run
from kaggle_flow.submit.calibrate import Calibration, calibration_for
from kaggle_flow.submit.choice import RunChoice
from kaggle_flow.submit.ledger import recording
from kaggle_flow.submit.testset import (
    check_probs,
    load_probs,
    predicted_counts,
    read_test_rows,
    save_probs,
    submission_values,
)
from kaggle_flow.table.layouts import labelled
from kaggle_flow.target import TARGETS

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace


def submission_id(test_id: str, id_form: str) -> str:
    """The id the site expects for a test image (its id in the table is relative to the test folder)."""
    path = PurePosixPath(test_id)
    return path.stem if id_form == "stem" else path.name


def expected_ids(comp: Competition, test_rows: pd.DataFrame) -> list[str]:
    """Submission ids of the test rows, in table order. Two test images of one id (x.jpg in two
    sub-folders of the test folder) are one line naming both: the site's ids are file names, so a
    submission cannot tell them apart, and keeping one would drop the other unsaid."""
    ids = [submission_id(i, comp.submission.id_form) for i in test_rows["id"]]
    first: dict[str, int] = {}
    for pos, sid in enumerate(ids):
        if sid in first:
            paths = test_rows["path"] if "path" in test_rows else test_rows["id"]
            what = "names without the extension" if comp.submission.id_form == "stem" else "names"
            raise DataError(f"{paths.iloc[first[sid]]} and {paths.iloc[pos]}: two test images with the one submission "
                            f"id '{sid}' (its ids are the files' {what}); rename one, or move it out of the test folder")
        first[sid] = pos
    return ids


def sample_file(comp: Competition, data_dir: Path) -> Path | None:
    """The competition's sample submission under `data_dir`, when it has one and it exists."""
    if not comp.submission.sample:
        return None
    file = Path(data_dir) / comp.submission.sample
    return file if file.is_file() else None


def submission_columns(comp: Competition) -> list[str]:
    """The columns of the competition's submission: the id, the values of its kind, the columns copied from the sample."""
    return [comp.submission.id_column, *comp.submission.value_columns(comp.classes), *comp.submission.copied]


def _check_columns(comp: Competition, columns: list[str], where: str) -> None:
    wanted = submission_columns(comp)
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


def format_submission(
    comp: Competition, test_rows: pd.DataFrame, probs: np.ndarray, sample: pd.DataFrame | None
) -> pd.DataFrame:
    """The submission frame: each test image's values in the site's format (its kind) and row order.

    Args:
        comp: the competition (its `submission` table gives kind, columns, id and label form).
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
    frame = pd.DataFrame({sub.id_column: ids, **submission_values(comp, probs)})
    if sample is None:
        if sub.copied:
            raise FlowError(f"submission.copied: the sample {sub.sample} is missing, and {', '.join(sub.copied)} is copied from it")
        return frame
    where = sample.attrs.get("file", sub.sample or "sample submission")
    _check_columns(comp, [str(c) for c in sample.columns], where)
    by_id = frame.drop_duplicates(sub.id_column).set_index(sub.id_column)
    order = sample[sub.id_column].astype(str).str.strip()
    unknown = ~order.isin(by_id.index)
    if unknown.any():
        pos = int(unknown.to_numpy().nonzero()[0][0])
        raise FlowError(f"{where} line {pos + 2}: id '{order.iloc[pos]}' has no test image (missing, or broken)")
    listed = set(order)
    unlisted = [i for i in ids if i not in listed]
    if unlisted:
        raise FlowError(f"{where}: test image '{unlisted[0]}' is not listed ({len(unlisted)} test images are not)")
    ordered = by_id.loc[order.to_list()]
    frame = pd.DataFrame({sub.id_column: order.to_list(), **{c: ordered[c].to_list() for c in ordered.columns},
                          **{c: sample[c].to_list() for c in sub.copied}})
    return frame[[str(c) for c in sample.columns]]  # the sample's column order


def _line(pos: int) -> int:
    """CSV line of a frame row (line 1 is the header)."""
    return pos + 2


def check_submission(comp: Competition, frame: pd.DataFrame, expected: list[str]) -> None:
    """Refuse a submission the site would reject: raise FlowError naming the line, column and value.

    Checks, in order: exactly the format's columns; no empty id or label; every id once (no
    duplicate, none missing, none extra); then the values, by the kind's own check (kinds.py): a
    label in the class set (an index 0..K-1 or a class name); a probability in [0, 1] (no NaN); the
    probabilities of a row summing to 1 within 1e-6; top_k labels of the class set, distinct, at most k.

    Example:
        >>> check_submission(comp, frame, expected_ids(comp, test_rows))
    """
    sub = comp.submission
    _check_columns(comp, [str(c) for c in frame.columns], "submission")
    frame = frame[submission_columns(comp)]
    kind = KINDS[sub.kind]
    text_columns = [sub.id_column] + (kind.value_columns(sub, comp.classes) if kind.holds_text else [])
    for column in text_columns:
        values = frame[column]
        empty = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
        if empty.any():
            pos = int(empty.nonzero()[0][0])
            raise FlowError(f"submission line {_line(pos)}: empty value in column '{column}'")
    _check_ids(frame[sub.id_column].astype(str), expected)
    kind.check(comp, frame)


def check_written(ws: Workspace, file: Path) -> None:
    """The check `write_submission` runs before writing, on a CSV written before (one sent again):
    a FlowError naming the file and its line."""
    expected = expected_ids(ws.comp, read_test_rows(ws, ws.table(quiet=True, keep_test=True)))
    try:
        check_submission(ws.comp, read_csv(file), expected)
    except FlowError as exc:
        raise type(exc)(f"{file}{str(exc).removeprefix('submission')}") from None


def _check_ids(ids: pd.Series, expected: list[str]) -> None:
    dup = ids.duplicated(keep="first").to_numpy()
    if dup.any():
        pos = int(dup.nonzero()[0][0])
        first = int((ids == ids.iloc[pos]).to_numpy().nonzero()[0][0])
        raise FlowError(
            f"submission line {_line(pos)}: duplicate id '{ids.iloc[pos]}' (first on line {_line(first)})"
        )
    present = set(ids)
    missing = [i for i in expected if i not in present]
    if missing:
        raise FlowError(f"submission: test id '{missing[0]}' is missing ({len(missing)} test ids have no row)")
    extra = (~ids.isin(set(expected))).to_numpy()
    if extra.any():
        pos = int(extra.nonzero()[0][0])
        raise FlowError(f"submission line {_line(pos)}: id '{ids.iloc[pos]}' is not a test image")


ROW_BYTES = 256  # a generous submission cell pair (an id and a value): the free space a row is checked against


def submission_name(run_name: str, when: float | None = None) -> str:
    """TIME_RUN.csv: sorts by time, says which run made it (a fold RUN/foldK as RUN-foldK)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when if when is not None else time.time()))
    return f"{stamp}_{run_name.replace('/', '-')}.csv"


def write_submission(
    comp: Competition,
    test_rows: pd.DataFrame,
    probs: np.ndarray,
    sample: pd.DataFrame | None,
    *,
    submissions_dir: Path,
    name: str,
    when: float | None = None,
    record: Callable[[Path], contextlib.AbstractContextManager[object]] | None = None,
) -> tuple[Path, pd.DataFrame]:
    """Format and check, then write submissions_dir/TIME_NAME.csv (temp file, then rename).

    The check runs before anything is written: a failed check is an error and leaves no file.
    `record(path)` wraps the write (the ledger's transaction, see ledger.recording).

    Example:
        >>> path, frame = write_submission(comp, test_rows, probs, sample, submissions_dir=ws.submissions_dir, name=run.id)
    """
    frame = format_submission(comp, test_rows, probs, sample)
    check_submission(comp, frame, expected_ids(comp, test_rows))
    out = _unused(Path(submissions_dir) / submission_name(name, when))
    ensure_free_space(submissions_dir, ROW_BYTES * (len(frame) + 1) * max(1, frame.shape[1] - 1), f"the submission ({len(frame)} rows)")
    with record(out) if record is not None else contextlib.nullcontext(), atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    return out, frame


def _unused(path: Path) -> Path:
    """TIME_RUN.csv, or TIME_RUN-2.csv when a submission of the same second and run exists."""
    candidate, n = path, 2
    while candidate.exists():
        candidate, n = path.with_name(f"{path.stem}-{n}{path.suffix}"), n + 1
    return candidate


# --- flow submit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrittenSubmission:
    """A checked submission file, written and in the ledger, and what it was made from."""

    file: Path  # submissions/COMP/TIME_RUN.csv
    frame: pd.DataFrame  # its rows
    name: str  # the run's id (or, for --probs outside a run folder, the file's folder)
    run: RunFolder | None  # None: --probs from a folder that is not a run
    probs: np.ndarray  # [len(test), K]
    tta: bool
    cv_score: float | None  # the run's validation score (the out-of-fold score of a CV run)
    counts: pd.DataFrame  # class, train, predicted: images per class in the training set and the submission
    checked: str = ""  # what the check before writing made sure of (its kind's `checked`)
    calibration: Calibration | None = None  # the temperature the written probabilities took (log loss)

    def show(self, names: list[str]) -> None:
        """What `flow submit` and `flow run` say of it: the classes predicted against the training
        set's (`names` as tables show them), the calibration, the file and what its check made sure of."""
        console.counts_table(f"Classes: training set vs. predicted ({self.name})", self.counts, names)
        if self.calibration is not None:
            console.info(self.calibration.line())
        console.info(f"Wrote {self.file} ({len(self.frame)} rows, checked: {self.checked})")


def submit(
    ws: Workspace,
    choice: RunChoice = RunChoice(),
    *,
    probs_file: Path | None = None,
    strict: bool = False,
    when: float | None = None,
) -> WrittenSubmission:
    """Predict the test set (or read saved probabilities), write the checked CSV and its ledger row.

    `choice` picks the run as in `predict.predict_test`; `probs_file` submits a saved test_probs.npy
    instead. The sample submission is checked before anything is predicted and the CSV before it is
    written; the run's test_probs.npy is saved only once the CSV is.

    Example:
        >>> submit(ws, RunChoice(run="20250101-120000-smallcnn-f0", tta=True)).file
        PosixPath('submissions/mnist/20250101-121500_20250101-120000-smallcnn-f0.csv')
    """
    table = ws.table(strict=strict, keep_test=True)
    test = read_test_rows(ws, table)
    expected_ids(ws.comp, test)  # two test images of one id: said before anything is predicted
    reap_temps(ws.submissions_dir)  # a CSV or ledger temp of a submit a kill -9 cut short
    sample = read_sample(ws.comp, ws.ensure_data())
    if probs_file is not None:
        if choice != RunChoice():
            raise FlowError("--probs gives the probabilities: leave out --run, --ensemble, --folds and --tta")
        owner = _probs_owner(Path(probs_file), ws.comp)
        probs = load_probs(probs_file, len(test), ws.comp)
        name = owner.id if owner is not None else Path(probs_file).resolve().parent.name
    else:
        from kaggle_flow.submit.predict import predict_test  # paddle, not for --probs

        pred = predict_test(ws, choice, table=table, save=False)
        owner, probs, name = pred.run, pred.probs, pred.run.id
        ensure_free_space(owner.path, probs.nbytes, f"the test probabilities {owner.test_probs.name}")  # before the CSV: both or neither
    score = owner.validation_score() if owner is not None else None
    calibration = calibration_for(owner, ws.comp.metric)
    written = calibration.apply(probs) if calibration is not None else probs

    def record(out: Path) -> contextlib.AbstractContextManager[None]:
        return recording(ws.submissions_dir, file=out, run=owner if owner is not None else name, cv_score=score, tta=choice.tta, when=when)

    file, frame = write_submission(ws.comp, test, written, sample, submissions_dir=ws.submissions_dir, name=name, when=when, record=record)
    if probs_file is None:
        save_probs(owner, probs)
    counts = _train_and_predicted(ws.comp, table, probs)
    return WrittenSubmission(file, frame, name, owner, probs, choice.tta, score, counts, KINDS[ws.comp.submission.kind].checked,
                             calibration)


def _train_and_predicted(comp: Competition, table: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """class, train, predicted: images per class in the training set and in the submission."""
    target = TARGETS[comp.target]
    counts = predicted_counts(comp.classes, probs, target)
    counts.insert(1, "train", target.counts(target.encode(labelled(table), comp.num_classes), comp.num_classes))
    return counts


def _probs_owner(file: Path, comp: Competition) -> RunFolder | None:
    """The run whose folder holds a saved probability file (None when the folder is not a run)."""
    try:
        run = load_run(file.parent)
    except NotFoundError:
        return None
    run.check_fits(comp)
    return run
