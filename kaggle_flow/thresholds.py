"""Per-class thresholds of a multi-label run, fitted on its out-of-fold predictions; RUN/thresholds.json.

    t = fit_thresholds(y_true, probs, METRICS[name])   one threshold a class, the metric at least its 0.5 score
    apply(probs, t)                                     0/1 [n, k]
    write_thresholds(run_dir, t) / read_thresholds(run_dir)

Each class's threshold is searched on a grid with the others held, class after class, twice; a
class whose best does not beat its current score keeps 0.5, so the fitted score is never below
the score at 0.5.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kaggle_flow.fileio import write_json
from kaggle_flow.metrics import Metric
from kaggle_flow.target import THRESHOLD, TARGETS

FILE = "thresholds.json"
GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)  # the thresholds tried for each class
PASSES = 2


@dataclass(frozen=True)
class Thresholds:
    values: np.ndarray  # [k]
    at_least_one: bool
    score_at_half: float
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"values": [float(v) for v in self.values], "at_least_one": self.at_least_one,
                "score_at_half": self.score_at_half, "score": self.score}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Thresholds:
        return cls(np.asarray(data["values"], dtype=np.float64), bool(data["at_least_one"]), float(data["score_at_half"]),
                   float(data["score"]))


def apply(probs: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """0/1 [n, k]: each class at its threshold; with at_least_one, an empty row gets its most probable class."""
    sets = TARGETS["multi"].decide(probs, thresholds.values)
    if thresholds.at_least_one:
        empty = sets.sum(axis=1) == 0
        sets[empty, np.asarray(probs)[empty].argmax(axis=1)] = 1
    return sets


def fit_thresholds(y_true: np.ndarray, probs: np.ndarray, metric: Metric) -> Thresholds:
    """The thresholds that maximise `metric` on the out-of-fold predictions (coordinate search on GRID)."""
    k = probs.shape[1]
    values = np.full(k, THRESHOLD)
    half = metric(y_true, probs, values)
    best = half
    for _ in range(PASSES):
        for j in range(k):
            for t in GRID:
                trial = values.copy()
                trial[j] = t
                score = metric(y_true, probs, trial)
                if metric.better(score, best):
                    best, values = score, trial
    return Thresholds(values, False, float(half), float(best))


def write_thresholds(run_dir: Path, thresholds: Thresholds) -> Path:
    return write_json(Path(run_dir) / FILE, thresholds.to_json())


def read_thresholds(run_dir: Path) -> Thresholds | None:
    file = Path(run_dir) / FILE
    return Thresholds.from_json(json.loads(file.read_text(encoding="utf-8"))) if file.is_file() else None
