"""RUN/pseudo.csv: the test images another run labels confidently, joining training (`flow train --pseudo`).

    id,path,label,prob,p0,...,pK-1     label: the argmax; prob: its probability; p0..: the whole prediction

Noisy Student (Xie et al., 2020), as Kaggle image solutions use it: a run (the teacher: one run, a
cross-validation run's folds averaged, or an ensemble) predicts the test set once, and the images it
gives a top probability of at least the threshold join every fold's TRAINING rows, with the argmax as
their label (the threshold is a share of what the teacher gives when it is sure: a teacher trained
with label smoothing eps over K classes tops out at 1 - eps + eps / K, 0.91 for 0.1 and ten
classes, so 0.95 means p >= 0.8645 there; submit/teacher.py's `sure`), or with `--pseudo-soft` the predicted probabilities as a soft target. Validation never
changes, so the score stays comparable; with `--folds all` each fold gets the same test rows, and no
out-of-fold prediction is ever used. The launching process predicts and writes the file before any
process starts (submit/teacher.py); every process, and a resumed run, reads the same file back.
No paddle here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_flow import console
from kaggle_flow.errors import DataError
from kaggle_flow.fileio import write_csv

PSEUDO = "pseudo.csv"  # in the run folder (a CV run's own: its folds read their parent's)
JOINED = ("id", "path", "label", "split")  # the table's columns a pseudo row brings into training


def pseudo_file(run_dir: Path) -> Path:
    return Path(run_dir) / PSEUDO


def prob_columns(num_classes: int) -> list[str]:
    return [f"p{k}" for k in range(num_classes)]


@dataclass(frozen=True)
class PseudoLabels:
    """The confident test rows of a teacher run (`rows`: id, path, label, split, prob, p0..), and how they were chosen."""

    source: str  # the teacher's run id
    threshold: float
    soft: bool
    rows: pd.DataFrame
    n_test: int  # test images predicted
    sure: float = 1.0  # the top probability the teacher gives when sure (below 1 after label smoothing)

    @property
    def cut(self) -> float:
        """The top probability an image needs: the threshold's share of what the teacher gives when sure."""
        return self.threshold * self.sure

    def config_keys(self) -> dict[str, object]:
        """What a new run's RunConfig records of them."""
        return {"pseudo": self.source, "pseudo_threshold": self.threshold, "pseudo_soft": self.soft, "pseudo_count": len(self.rows)}

    def line(self, classes: list[str]) -> str:
        """The one line `flow train` prints: how many joined, per class, at which threshold."""
        counts = self.rows["label"].value_counts()
        per_class = ", ".join(f"{name}: {int(counts.get(k, 0)):,}" for k, name in enumerate(classes))
        how = "as soft targets (their predicted probabilities)" if self.soft else "with the predicted label"
        return (f"Pseudo-labels from {self.source}: {len(self.rows):,} of {self.n_test:,} test images at {self.at()} "
                f"join training {how} ({per_class}); validation unchanged")

    def at(self) -> str:
        """'p >= 0.95', or 'p >= 0.865 (0.95 of the 0.91 it gives when sure, after label smoothing)'."""
        if self.sure >= 1.0:
            return f"p >= {self.threshold:g}"
        return f"p >= {self.cut:.4g} ({self.threshold:g} of the {self.sure:.3g} it gives when sure, after label smoothing)"


def select(source: str, test: pd.DataFrame, probs: np.ndarray, threshold: float, *, soft: bool, sure: float = 1.0) -> PseudoLabels:
    """The test rows whose top probability is at least `threshold` of `sure` (what the teacher gives
    when sure: a teacher trained with label smoothing never reaches 1), labelled with the argmax."""
    test = test.reset_index(drop=True)
    top = probs.max(axis=1)
    keep = top >= threshold * sure
    rows = test.loc[keep, ["id", "path"]].reset_index(drop=True)
    rows["label"] = probs[keep].argmax(axis=1).astype(np.int64)
    rows["split"] = "test"
    rows["prob"] = top[keep].astype(np.float64)
    rows[prob_columns(probs.shape[1])] = probs[keep].astype(np.float64)
    return PseudoLabels(source, threshold, soft, rows, len(test), sure)


def write_pseudo(run_dir: Path, labels: PseudoLabels) -> Path:
    """RUN/pseudo.csv, written atomically before any process trains."""
    return write_csv(pseudo_file(run_dir), labels.rows.drop(columns="split"))


def read_pseudo(run_dir: Path, run_name: str, count: int, num_classes: int) -> pd.DataFrame:
    """The rows RUN/pseudo.csv holds, as training joins them; missing or changed (not `count` rows): one line."""
    file = pseudo_file(run_dir)
    columns = ["id", "path", "label", "prob", *prob_columns(num_classes)]
    try:
        rows = pd.read_csv(file, dtype={"id": str, "path": str})
        ok = list(rows.columns) == columns and len(rows) == count and rows["label"].between(0, num_classes - 1).all()
    except (OSError, ValueError, pd.errors.EmptyDataError):
        ok, rows = False, None
    if not ok or rows is None:
        raise DataError(f"{file}: missing or not the {count:,} pseudo-labelled rows {run_name} started with; train a new run")
    return rows.assign(label=rows["label"].astype(np.int64), split="test")


def with_pseudo(train_rows: pd.DataFrame, pseudo: pd.DataFrame | None) -> pd.DataFrame:
    """The fold's training rows and the pseudo-labelled test rows after them; validation is never changed."""
    if pseudo is None or pseudo.empty:
        return train_rows
    extra = [c for c in pseudo.columns if c not in train_rows.columns and c != "prob"]
    return pd.concat([train_rows, pseudo[[*JOINED, *extra]]], ignore_index=True)


def cache_rows(rows: pd.DataFrame, pseudo: pd.DataFrame | None) -> pd.DataFrame:
    """Every row the run's image caches hold: the labelled rows and the pseudo-labelled test images."""
    return rows if pseudo is None or pseudo.empty else pd.concat([rows, pseudo[list(JOINED)]], ignore_index=True)


def soft_targets(rows: pd.DataFrame, num_classes: int) -> np.ndarray:
    """float32 [N, K]: one-hot labels, and a pseudo row's predicted probabilities (`--pseudo-soft`)."""
    targets = np.eye(num_classes, dtype=np.float32)[rows["label"].to_numpy(dtype=np.int64)]
    columns = prob_columns(num_classes)
    if set(columns) <= set(rows.columns):
        probs = rows[columns].to_numpy(dtype=np.float32)
        soft = ~np.isnan(probs).any(axis=1)
        targets[soft] = probs[soft] / probs[soft].sum(axis=1, keepdims=True)
    return targets


def warn_none(labels: PseudoLabels) -> None:
    console.warn(f"--pseudo {labels.source}: none of its {labels.n_test:,} test predictions reaches {labels.at()}; "
                 f"training uses the labelled rows alone (a lower --pseudo-threshold lets some join)")
