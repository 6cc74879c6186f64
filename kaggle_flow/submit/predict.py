"""What a run predicts: class probabilities of any rows, and of the test set for `flow predict` and `flow submit`.

A run is rebuilt from its own RunConfig (model, size, channels, mean/std) and its best weights, so
predicting never depends on the competition TOML having stayed the same; `Run.check_fits` says when
a run does not fit the competition at hand. Every kind of run predicts:

    single, full  its best weights
    cv            the mean of its folds' predictions
    ensemble      the mean of its members' predictions (each of any kind); a blend's weighted mean
                  (`flow blend`, submit/blend.py: of the members' ranks for an AUC metric)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import paddle
import pandas as pd

from kaggle_flow import console
from kaggle_flow.data.augment import tta_views
from kaggle_flow.data.loader import eval_loader
from kaggle_flow.engine.loop import loader_probs
from kaggle_flow.errors import FlowError, NotFoundError
from kaggle_flow.machine import use_device
from kaggle_flow.engine.checkpoint import model_description
from kaggle_flow.models import create_model
from kaggle_flow.models.state_file import UnreadableState, read_state
from kaggle_flow.models.weights import set_weights
from kaggle_flow.runs import FAILED, Ensemble, Run, RunFolder, create_ensemble
from kaggle_flow.submit.blend import combine
from kaggle_flow.submit.choice import RunChoice, chosen_run, ensemble_members
from kaggle_flow.submit.testset import predicted_counts, read_test_rows, save_probs
from kaggle_flow.target import TARGETS

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace


def load_model(run: Run) -> paddle.nn.Layer:
    """The run's model with its best weights, in eval mode, on the current paddle device."""
    if run.summary.status == FAILED:
        raise FlowError(f"{run.path}: a failed run ({run.summary.reason or 'its loss stopped being finite'}); its weights are not used")
    if not run.best.is_file():
        raise NotFoundError(f"{run.best}: no trained weights in this run folder (did the training finish an epoch?)")
    config = run.config
    model = create_model(config.model, config.num_classes, in_channels=config.channels, image_size=config.image_size)
    set_weights(model, finite_weights(run.best), run.best, model_description(config))
    model.eval()
    return model


def finite_weights(file: Path) -> dict[str, np.ndarray]:
    """A state dict that can predict: readable (by models.state_file: arrays and numbers only), and every
    weight finite. A run whose training blew up (a learning rate far too high) can still end `finished`
    with NaN weights; predicting with them would give one class for every image, so it is refused here,
    where every command loads them."""
    try:
        state = read_state(file)
    except UnreadableState:
        raise FlowError(f"{file}: not a readable weights file (cut short, or not paddle's); train again, or name another run with --run") from None
    if not isinstance(state, dict):
        raise FlowError(f"{file}: not a state dict of weights; train again, or name another run with --run")
    bad = sum(int((~np.isfinite(v)).sum()) for v in (np.asarray(t) for t in state.values()) if v.dtype.kind == "f")
    if bad:
        raise FlowError(f"{file}: {bad} weights are NaN or infinite; this run cannot predict (train again, e.g. with a lower --lr)")
    return state


def predict_probs(run: RunFolder, rows: pd.DataFrame, *, tta: bool = False, batch_size: int = 128) -> np.ndarray:
    """Class probabilities [len(rows), K] in row order (float32): softmax, or sigmoid for a multi-label run.

    A cross-validation run averages its folds, an ensemble its members. With `tta` each image is
    also predicted in the views of augment.tta_views (mirrored where the run's preset flips, else
    shifted a little four ways) and the predictions are averaged (an ensemble made with --tta always
    is): probabilities are averaged, before any threshold decides. An image that cannot be read gets the average prediction of the readable ones (with a
    warning listing it), so the output always has one row per input row.
    """
    rows = rows.reset_index(drop=True)
    if isinstance(run, Ensemble):  # a blend's weights (flow blend), ranks averaged for AUC; else equal weights
        tta, config = tta or run.config.tta, run.config
        probs = [predict_probs(m, rows, tta=tta, batch_size=batch_size) for m in run.members()]
        return combine(probs, config.member_weights(), rank=config.rank).astype(np.float32)
    if run.kind == "cv":
        folds = run.folds()
        trained = [f for f in folds if f.best.is_file()]
        if not trained:
            raise NotFoundError(f"{run.path}: no fold has trained weights yet")
        if len(trained) < len(folds):
            console.warn(f"{run.path}: only {len(trained)} of {len(folds)} folds have weights; averaging those")
        return _mean([_single_probs(f, rows, tta, batch_size) for f in trained])
    return _single_probs(run, rows, tta, batch_size)


def tta_description(run: RunFolder) -> str:
    """What --tta averages each image with, for a run, a cross-validation run or an ensemble."""
    if isinstance(run, Ensemble):
        return "the views of each member's recipe"
    return tta_views(run.config.preset, run.config.image_size).description


def _mean(probs: list[np.ndarray]) -> np.ndarray:
    return np.mean(probs, axis=0).astype(np.float32)


def _single_probs(run: Run, rows: pd.DataFrame, tta: bool, batch_size: int) -> np.ndarray:
    use_device()
    model = load_model(run)
    views = [None, *tta_views(run.config.preset, run.config.image_size).transforms] if tta else [None]
    total = np.zeros((len(rows), run.config.num_classes), np.float64)
    kept = np.arange(len(rows))
    for i, view in enumerate(views):
        loader = eval_loader(rows, run.config, batch_size, run.cache_dir, view=view, report=i == 0)
        kept = loader.dataset.kept
        if len(kept):
            total[kept] += loader_probs(model, loader, TARGETS[run.config.target])
    probs = total / len(views)
    if len(kept) < len(rows):
        missing = np.setdiff1d(np.arange(len(rows)), kept)
        # an unreadable image: no information of its own, so the average prediction of the others
        probs[missing] = probs[kept].mean(axis=0) if len(kept) else 1.0 / run.config.num_classes
    return probs.astype(np.float32)


# --- the test set ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """The test rows, their probabilities, and the run that made them (a new ensemble for --ensemble)."""

    run: RunFolder
    probs: np.ndarray  # [len(test), K]
    test: pd.DataFrame
    tta: bool = False
    new_ensemble: bool = False

    @property
    def counts(self) -> pd.DataFrame:
        """class, predicted: test images per predicted class."""
        return predicted_counts(self.run.config.classes, self.probs, TARGETS[self.run.config.target])


def predict_test(
    ws: Workspace, choice: RunChoice = RunChoice(), *, strict: bool = False, table: pd.DataFrame | None = None, save: bool = True
) -> Prediction:
    """Predict the test images with the run `choice` picks, and save the probabilities in its folder.

    Args:
        ws: the Workspace.
        choice: the run, --folds, --ensemble and --tta (see choice.py); default: the best run, no TTA.
        strict: broken test images are an error instead of being predicted as the average of the others.
        table: the workspace's table when the caller has read it already (with its test rows).
        save: write the run's test_probs.npy (`flow submit` saves only after the CSV passed its checks).

    Every run is checked against the competition before any is predicted; --ensemble saves its
    members' mean as a new runs/COMP/ensemble-TIME run.

    Example:
        >>> predict_test(ws, RunChoice(ensemble="20250101-120000-smallcnn-f0,20250101-130000-resnet18-f0"))
    """
    choice.check()
    test = read_test_rows(ws, table if table is not None else ws.table(strict=strict, keep_test=True))
    if choice.ensemble is not None:
        members = ensemble_members(ws, choice.ensemble)
        probs = _mean([predict_probs(m, test, tta=choice.tta) for m in members])
        chosen: RunFolder = create_ensemble(ws.runs_dir, members, ws.comp, tta=choice.tta)
    else:
        chosen = chosen_run(ws, choice)
        probs = predict_probs(chosen, test, tta=choice.tta)
    if save:
        save_probs(chosen, probs)
    return Prediction(chosen, probs, test, tta=choice.tta, new_ensemble=choice.ensemble is not None)
