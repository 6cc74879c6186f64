"""The teacher of `flow train --pseudo RUN`: the run found as `flow predict --run` finds it, checked, and its
test predictions made once per `flow train`, before any run folder or process exists.

Any kind of run teaches: a single run, a cross-validation run (its folds' mean, as `flow predict
--folds all` gives it: test predictions only, never out-of-fold ones) or an ensemble or blend.
Refused in one line each: a run of another competition or class list, a failed or damaged run, a run
with no weights. pseudo.py keeps the confident predictions and writes them into the new run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kaggle_flow import console
from kaggle_flow.config import RunConfig
from kaggle_flow.errors import FlowError
from kaggle_flow.pseudo import PseudoLabels, select, warn_none
from kaggle_flow.run_state import state_of
from kaggle_flow.runs import FAILED, Ensemble, Run, RunFolder, resolve_run
from kaggle_flow.submit.predict import predict_probs
from kaggle_flow.submit.testset import read_test_rows
from kaggle_flow.target import TARGETS

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace


def find_teacher(ws: Workspace, name: str) -> RunFolder:
    """The run --pseudo names, fit to label this competition's test images; one line naming it otherwise."""
    if TARGETS[ws.comp.target].thresholded:
        raise FlowError(f"--pseudo {name}: pseudo-labels take a test image's top class, one label an image; "
                        f"not for a multi-label competition (target = \"{ws.comp.target}\")")
    run: RunFolder | None = None
    try:
        run = resolve_run(ws, name, best=True)
        run.check_fits(ws.comp)  # another competition or class list: one line
        if isinstance(run, Run):
            damaged = state_of(run).damaged
            if damaged:
                raise FlowError(f"damaged ({damaged}); its predictions are not used")
            if run.summary.status == FAILED:
                raise FlowError(f"a failed run ({run.summary.reason or 'its loss stopped being finite'}); its predictions are not used")
        if not run.has_weights():
            raise FlowError("no trained weights to predict with")
    except FlowError as exc:
        text = str(exc) if run is None else str(exc).removeprefix(f"{run.path}: ")
        raise type(exc)(f"--pseudo {name}: {text}") from None
    return run


def sure(teacher: RunFolder) -> float:
    """The top probability the teacher gives an image it is sure of: 1 - eps + eps / K after training with
    label smoothing eps (0.91 for 0.1 and ten classes), 1 without; an ensemble's, its members' mean."""
    if isinstance(teacher, Ensemble):
        return float(np.mean([sure(m) for m in teacher.members()]))
    config = teacher.config
    return 1.0 - config.label_smoothing + config.label_smoothing / len(config.classes)


def pseudo_labels(ws: Workspace, teacher: RunFolder | None, config: RunConfig, table: pd.DataFrame) -> PseudoLabels | None:
    """The test images the teacher (`find_teacher(ws, config.pseudo)`) predicts with a top probability of
    at least the threshold, said in one line (a warning when there are none); None without --pseudo."""
    if teacher is None or config.pseudo is None:
        return None
    test = read_test_rows(ws, table)
    try:
        probs = predict_probs(teacher, test)
    except FlowError as exc:  # weights that cannot predict (NaN, unreadable): the line names the teacher
        raise type(exc)(f"--pseudo {config.pseudo}: {exc}") from None
    labels = select(teacher.id, test, probs, config.pseudo_threshold, soft=config.pseudo_soft, sure=sure(teacher))
    if labels.rows.empty:
        warn_none(labels)
    else:
        console.info(labels.line(config.classes))
    return labels
