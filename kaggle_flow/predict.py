"""Class probabilities of a trained run for any rows of the canonical table.

A run is rebuilt from its own config.json (model, size, channels, mean/std) and its best weights, so
predicting never depends on the competition TOML having stayed the same; `check_run` says when a run
does not fit the competition at hand. A cross-validation parent run predicts the mean over its folds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F
import pandas as pd

from kaggle_flow import console
from kaggle_flow.errors import FlowError, NotFoundError
from kaggle_flow.runs import fold_dirs, load_config


def device() -> str:
    """'gpu' when paddle was built with CUDA and a GPU is present, else 'cpu'."""
    try:
        if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
            return "gpu"
    except Exception:  # a CUDA build on a machine without a driver
        pass
    return "cpu"


def comp_runs_dir(run_dir: Path) -> Path:
    """runs/COMP for a run folder (a fold of a cross-validation run sits one level deeper)."""
    run_dir = Path(run_dir)
    return run_dir.parent.parent if (run_dir.parent / "config.json").is_file() else run_dir.parent


def check_run(run_dir: Path, comp: Any) -> None:
    """A one-line FlowError when the run was trained for another competition or class list."""
    config = load_config(run_dir)
    if config.get("kind") == "ensemble":
        return
    name = config.get("competition")
    if name is not None and name != comp.name:
        raise FlowError(f"{run_dir}: a run of '{name}', not of '{comp.name}'")
    classes = config.get("classes")
    if classes is not None and len(classes) != comp.num_classes:
        raise FlowError(f"{run_dir}: trained for {len(classes)} classes, '{comp.name}' has {comp.num_classes}")
    if classes is not None and list(classes) != list(comp.classes):
        raise FlowError(f"{run_dir}: trained with classes {classes}, '{comp.name}' now has {list(comp.classes)}")


def load_model(run_dir: Path, config: dict[str, Any] | None = None, weights: str = "best.pdparams") -> paddle.nn.Layer:
    """The run's model with its best weights, in eval mode."""
    from kaggle_flow.models import create_model

    config = config or load_config(run_dir)
    file = Path(run_dir) / weights
    if not file.is_file():
        raise NotFoundError(f"{file}: no trained weights in this run folder (did the training finish an epoch?)")
    model = create_model(str(config["model"]), int(config["num_classes"]), in_channels=int(config["channels"]))
    model.set_state_dict(paddle.load(str(file)))
    model.eval()
    return model


@paddle.no_grad()
def loader_probs(model: paddle.nn.Layer, loader: Any, *, amp: bool = False) -> np.ndarray:
    """Softmax probabilities [N, K] over a loader's batches, in its order."""
    model.eval()
    out = []
    for images, _ in loader:
        if amp:
            with paddle.amp.auto_cast():
                logits = model(images)
        else:
            logits = model(images)
        out.append(F.softmax(logits.astype("float32"), axis=1).numpy())
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(out, axis=0)


def _single_run_probs(run_dir: Path, rows: pd.DataFrame, tta: bool, batch_size: int) -> np.ndarray:
    from kaggle_flow.data import eval_loader

    config = load_config(run_dir)
    paddle.set_device(device())
    model = load_model(run_dir, config)
    k = int(config["num_classes"])
    cache_dir = comp_runs_dir(run_dir) / "cache"
    views = [False, True] if tta else [False]
    total = np.zeros((len(rows), k), np.float64)
    kept: np.ndarray | None = None
    for i, flip in enumerate(views):
        loader = eval_loader(rows, config, batch_size=batch_size, cache_dir=cache_dir, hflip=flip, report=i == 0)
        kept = loader.dataset.kept
        if len(kept):
            total[kept] += loader_probs(model, loader)
    probs = total / len(views)
    if kept is not None and len(kept) < len(rows):
        missing = np.setdiff1d(np.arange(len(rows)), kept)
        # an unreadable image: no information of its own, so the average prediction of the others
        probs[missing] = probs[kept].mean(axis=0) if len(kept) else 1.0 / k
    return probs.astype(np.float32)


def predict_probs(run_dir: Path, rows: pd.DataFrame, *, tta: bool = False, batch_size: int = 128) -> np.ndarray:
    """Softmax probabilities [len(rows), K] in row order, from the run's best weights.

    A cross-validation run averages its folds. With `tta` each image is also predicted mirrored
    left-right and the two are averaged. An image that cannot be read gets the average prediction of
    the readable ones (with a warning listing it), so the output always has one row per input row.
    """
    run_dir = Path(run_dir)
    rows = rows.reset_index(drop=True)
    if (run_dir / "best.pdparams").is_file():
        return _single_run_probs(run_dir, rows, tta, batch_size)
    folds = [f for f in fold_dirs(run_dir) if (f / "best.pdparams").is_file()]
    if not folds:
        raise NotFoundError(f"{run_dir}: no trained weights (best.pdparams) in this run folder")
    if len(folds) < len(fold_dirs(run_dir)):
        console.warn(f"{run_dir}: only {len(folds)} of {len(fold_dirs(run_dir))} folds have weights; averaging those")
    return np.mean([_single_run_probs(f, rows, tta, batch_size) for f in folds], axis=0).astype(np.float32)
