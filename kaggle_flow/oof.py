"""oof.csv: a run's out-of-fold predictions, its columns spelled here alone.

    id, label, pred, prob_0 .. prob_{K-1}     one row per validation image, by the best model

`label` and `pred` are cells as the run's target writes them (target.format): a class index "3",
or for a multi-label run the set of classes "0 3" ("" for none; `pred` decided at 0.5). Reading
them back therefore needs the target (`read_oof(path, k, target)`).

A single run writes its validation fold's; a cross-validation run every fold's together (its CV
score is theirs); `flow submit` fits the log-loss temperature on them (submit/calibrate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_flow.fileio import write_csv
from kaggle_flow.target import TARGETS, Target

FLOAT_FORMAT = "%.6g"  # probabilities: six significant digits are more than any metric tells apart


@dataclass(frozen=True)
class OutOfFold:
    """The predictions of oof.csv: image ids, their true and predicted labels (encoded as the target
    encodes them), the probabilities."""

    ids: np.ndarray  # [N] str
    labels: np.ndarray  # [N] int, the true class; [N, K] 0/1 for a multi-label target
    preds: np.ndarray  # [N] int, the arg-max of probs; [N, K] 0/1, each class at 0.5
    probs: np.ndarray  # [N, K]

    def __len__(self) -> int:
        return len(self.ids)


def prob_columns(num_classes: int) -> list[str]:
    return [f"prob_{j}" for j in range(num_classes)]


def write_oof(path: Path, oof: OutOfFold, target: Target = TARGETS["single"]) -> Path:
    probs = {column: oof.probs[:, j] for j, column in enumerate(prob_columns(oof.probs.shape[1]))}
    cells = {name: [target.format(row) for row in values] for name, values in (("label", oof.labels), ("pred", oof.preds))}
    frame = pd.DataFrame({"id": oof.ids, **cells, **probs})
    return write_csv(path, frame, float_format=FLOAT_FORMAT)


def read_oof(path: Path, num_classes: int, target: Target = TARGETS["single"]) -> OutOfFold:
    """oof.csv as a run of `target` wrote it; a cell that is not a label is a DataError naming the file and row."""
    frame = pd.read_csv(path, dtype={"id": str, "label": str, "pred": str})

    def parsed(column: str) -> np.ndarray:
        cells = [target.parse(cell, num_classes, f"{path} row {i + 1}, {column}") for i, cell in enumerate(frame[column].fillna(""))]
        return np.stack(cells) if cells else np.zeros(0, np.int64)  # [N] class indices, or [N, K] 0/1

    return OutOfFold(ids=frame["id"].to_numpy(), labels=parsed("label"), preds=parsed("pred"),
                     probs=frame[prob_columns(num_classes)].to_numpy(dtype=np.float64))


def joined(parts: list[OutOfFold]) -> OutOfFold:
    """The folds' predictions as one, in the order given (a cross-validation run's oof.csv)."""
    return OutOfFold(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("ids", "labels", "preds", "probs")))
