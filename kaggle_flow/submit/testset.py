"""The test set a prediction is made for: its rows of the table, its probabilities on disk, the classes predicted.

A run's test_probs.npy holds one row per test image (in table order) and one column per class;
`flow predict` writes it, `flow submit --probs` reads it back and checks it against the test set
before anything is submitted; `submission_values` turns it into the value columns of the
competition's submission kind. No paddle here: submitting saved probabilities never loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kaggle_flow import console
from kaggle_flow.competition import Competition
from kaggle_flow.errors import DataError, FlowError
from kaggle_flow.fileio import atomic_path, ensure_free_space, reap_temps
from kaggle_flow.kinds import KINDS
from kaggle_flow.runs import RunFolder
from kaggle_flow.table.layouts import no_test_images
from kaggle_flow.target import TARGETS, Target
from kaggle_flow.thresholds import Thresholds, apply

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace


def read_test_rows(ws: Workspace, table: pd.DataFrame) -> pd.DataFrame:
    """The test rows of the workspace's table; a one-line error when there are none."""
    test = table[table["split"] == "test"].reset_index(drop=True)
    if test.empty:
        raise DataError(no_test_images(ws.data_dir, ws.comp, table))
    return test


def check_probs(comp: Competition, probs: np.ndarray, n_test: int) -> None:
    """Probabilities must be one row per test image and one column per class, finite, none negative, and
    (softmax) no row summing to 0 (a row is scaled to sum to 1 before it is written) or (sigmoid) none above 1."""
    if probs.ndim != 2:
        raise FlowError(f"probabilities must be a table of images x classes (got shape {probs.shape})")
    if probs.shape[0] != n_test:
        raise FlowError(f"probabilities for {probs.shape[0]} images, but the test set has {n_test}")
    if probs.shape[1] != comp.num_classes:
        raise FlowError(
            f"probabilities for {probs.shape[1]} classes, but '{comp.name}' has {comp.num_classes} classes"
        )
    bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
    if bad.size:
        rows = console.shortlist(bad + 1)
        raise FlowError(f"probabilities are NaN or infinite for {bad.size} of {n_test} test images (rows {rows}): the model diverged")
    negative = np.argwhere(probs < 0)
    if negative.size:
        row, col = (int(v) for v in negative[0])
        raise FlowError(f"row {row + 1} holds {probs[row, col]:g} for class '{comp.classes[col]}': a probability is 0 or more")
    if TARGETS[comp.target].activation == "sigmoid":  # each class on its own: a probability of 1 at most, a row of 0s allowed
        over = np.argwhere(probs > 1)
        if over.size:
            row, col = (int(v) for v in over[0])
            raise FlowError(f"row {row + 1} holds {probs[row, col]:g} for class '{comp.classes[col]}': a probability is 1 or less")
        return
    zero = np.flatnonzero(probs.sum(axis=1) <= 0)
    if zero.size:
        raise FlowError(f"row {zero[0] + 1} sums to 0: it cannot be scaled to sum to 1")


def submission_values(comp: Competition, probs: np.ndarray, thresholds: Thresholds | None = None) -> dict[str, list[object]]:
    """The value columns of a submission, one entry per test image in `probs`' row order, as the
    competition's kind writes them (kinds.py: the arg-max class, the positive class's probability, a
    column per class, the k most probable classes, the classes at the run's `thresholds`); single-label
    probabilities are renormalized to sum to 1 and, for a competition scored by log loss, clipped by
    LOGLOSS_EPS as the scorer does."""
    return KINDS[comp.submission.kind].values(comp, np.asarray(probs, dtype=np.float64), thresholds)


def predicted_counts(
    classes: list[str], probs: np.ndarray, target: Target = TARGETS["single"], thresholds: Thresholds | None = None
) -> pd.DataFrame:
    """class, predicted: test images per predicted class (each row's arg-max; a multi-label target: the
    classes at the run's thresholds; every class, zero included)."""
    answers = target.decide(np.asarray(probs)) if thresholds is None else apply(probs, thresholds)
    return pd.DataFrame({"class": list(classes), "predicted": target.counts(answers, len(classes))})


def save_probs(run: RunFolder, probs: np.ndarray) -> Path:
    """The run's test probabilities (its test_probs), written to a temp file, then renamed."""
    probs = np.asarray(probs, dtype=np.float32)
    reap_temps(run.path)  # a test_probs.npy temp a kill -9 left
    ensure_free_space(run.path, probs.nbytes, f"the test probabilities {run.test_probs.name}")
    with atomic_path(run.test_probs) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, probs)
    return run.test_probs


def load_probs(file: Path, n_test: int, comp: Competition) -> np.ndarray:
    """Read a saved probability file and check it matches the test set."""
    file = Path(file)
    if not file.is_file():
        raise FlowError(f"{file}: probability file not found")
    try:
        probs = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FlowError(f"{file}: not a NumPy probability file: {exc}") from None
    if not (np.issubdtype(probs.dtype, np.number) or probs.dtype == bool):
        raise FlowError(f"{file}: holds {probs.dtype} values, not numbers")
    try:
        check_probs(comp, probs, n_test)
    except FlowError as exc:
        raise FlowError(f"{file}: {exc}") from None
    return probs
