"""oof.csv: a run's out-of-fold predictions, its columns spelled here alone.

    id, label, pred, prob_0 .. prob_{K-1}     one row per validation image, by the best model

A single run writes its validation fold's; a cross-validation run every fold's together (its CV
score is theirs); `flow submit` fits the log-loss temperature on them (submit/calibrate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_flow.fileio import write_csv

FLOAT_FORMAT = "%.6g"  # probabilities: six significant digits are more than any metric tells apart


@dataclass(frozen=True)
class OutOfFold:
    """The predictions of oof.csv: image ids, their true and predicted class indices, the probabilities."""

    ids: np.ndarray  # [N] str
    labels: np.ndarray  # [N] int, the true class
    preds: np.ndarray  # [N] int, the arg-max of probs
    probs: np.ndarray  # [N, K]

    def __len__(self) -> int:
        return len(self.ids)


def prob_columns(num_classes: int) -> list[str]:
    return [f"prob_{j}" for j in range(num_classes)]


def write_oof(path: Path, oof: OutOfFold) -> Path:
    probs = {column: oof.probs[:, j] for j, column in enumerate(prob_columns(oof.probs.shape[1]))}
    frame = pd.DataFrame({"id": oof.ids, "label": oof.labels, "pred": oof.preds, **probs})
    return write_csv(path, frame, float_format=FLOAT_FORMAT)


def read_oof(path: Path, num_classes: int) -> OutOfFold:
    frame = pd.read_csv(path, dtype={"id": str})
    return OutOfFold(
        ids=frame["id"].to_numpy(), labels=frame["label"].to_numpy(dtype=np.int64), preds=frame["pred"].to_numpy(dtype=np.int64),
        probs=frame[prob_columns(num_classes)].to_numpy(dtype=np.float64),
    )


def joined(parts: list[OutOfFold]) -> OutOfFold:
    """The folds' predictions as one, in the order given (a cross-validation run's oof.csv)."""
    return OutOfFold(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("ids", "labels", "preds", "probs")))
