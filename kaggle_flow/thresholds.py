"""Per-class thresholds for multi-label answers, fitted on out-of-fold probabilities to the metric.

A sigmoid head gives each class its own probability, and 0.5 is seldom the best place to cut it: F2
rewards recall, so the best cut of a mean-F2 competition is lower; a rare class is predicted with
less confidence than a common one. After training, `fit_thresholds` cuts the out-of-fold predictions
(every labelled image predicted by a model that did not train on it) one of three ways, HOWS:

- "0.5" for every class;
- "global": the one value of GRID that scores best for every class at once;
- "per class": coordinate ascent from the global one: for each class in turn, the value of GRID that
  scores best with the other classes held, PASSES times over the classes (until a pass changes
  nothing). A class with fewer than MIN_POSITIVES positive images keeps the global threshold: a
  threshold fitted to a handful of images fits those images, not the test set.

A fitted way (global, per class) also gives an image with no class over its threshold its most
probable class (`at_least_one`) when that raises the metric on the rows fitted (mean F2 of an image
with no answer is 0).

Which way wins is decided on rows the fit did not see: the rows are cut in PARTS stratified parts,
each way is fitted on all parts but one and decides the one left out, in turn, and the way whose
held-out answers score best is fitted on every row (a tie keeps the simpler way). Scored on the rows
it was fitted on, a threshold per class always looks best; on a hold-out of a few hundred images it
can be fitted to their noise and lose to one global cut, or to 0.5, on the test set.

A threshold moves only when the score rises, and 0.5 is in GRID: the fitted score is never below the
score at 0.5 on the rows fitted. A metric of probabilities (mean_auc) has no cut: 0.5 everywhere.
The run keeps them in `thresholds.json` (`write_thresholds` / `read_thresholds`); `apply` decides.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kaggle_flow.errors import DataError, FlowError
from kaggle_flow.explore.multifolds import kfold
from kaggle_flow.fileio import write_json
from kaggle_flow.metrics import Metric
from kaggle_flow.target import TARGETS, THRESHOLD

GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)  # the candidate thresholds, 0.5 among them
PASSES = 3  # coordinate ascent passes over the classes (fewer when a pass changes nothing)
MIN_POSITIVES = 10  # positive oof images a class needs for its own threshold; fewer: the global one
HOWS = ("0.5", "global", "per class")  # the ways to cut, simplest first: a tie between them keeps the simpler
PARTS = 5  # stratified parts of the rows: each way is fitted on PARTS - 1 and scored on the one left out
FILE = "thresholds.json"  # in the run folder


@dataclass(frozen=True, eq=False)
class Thresholds:
    """A threshold a class, whether an image gets at least one label, and the oof scores at 0.5 and here."""

    values: np.ndarray  # [k] floats in [0, 1]
    at_least_one: bool = False
    score_at_half: float = math.nan
    score: float = math.nan
    how: str = "per class"  # one of HOWS
    held_out: tuple[float, ...] = ()  # each way's score (HOWS' order) on the rows left out of its fit; () untold

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Thresholds) and np.array_equal(self.values, other.values) and (
            self.at_least_one, self.score_at_half, self.score, self.how, self.held_out) == (
            other.at_least_one, other.score_at_half, other.score, other.how, other.held_out)

    def to_json(self) -> dict[str, object]:
        return {"values": [float(v) for v in self.values], "at_least_one": self.at_least_one,
                "score_at_half": self.score_at_half, "score": self.score, "how": self.how,
                "held_out": dict(zip(HOWS, self.held_out))}

    @classmethod
    def from_json(cls, data: object) -> Thresholds:
        """The thresholds of `to_json`'s dict; a ValueError saying what is wrong otherwise."""
        if not isinstance(data, dict) or not {"values", "at_least_one", "score_at_half", "score"} <= set(data):
            raise ValueError("not an object with values, at_least_one, score_at_half and score")
        values = data["values"]
        if not isinstance(values, list) or not values or not all(_number(v) and 0 <= v <= 1 for v in values):
            raise ValueError("values is not a list of numbers between 0 and 1")
        if not isinstance(data["at_least_one"], bool):
            raise ValueError(f"at_least_one is {data['at_least_one']!r}, not true or false")
        if not (_number(data["score_at_half"]) and _number(data["score"])):
            raise ValueError("score_at_half or score is not a number")
        how, held_out = data.get("how", "per class"), data.get("held_out", {})  # files of older runs have neither
        if how not in HOWS:
            raise ValueError(f"how is {how!r}, not one of {', '.join(HOWS)}")
        if not isinstance(held_out, dict) or (held_out and (set(held_out) != set(HOWS) or not all(map(_number, held_out.values())))):
            raise ValueError(f"held_out is not an object of a number for each of {', '.join(HOWS)}")
        return cls(np.asarray(values, dtype=np.float64), data["at_least_one"], float(data["score_at_half"]),
                   float(data["score"]), how, tuple(float(held_out[h]) for h in HOWS) if held_out else ())

    def summary(self, metric: str) -> str:
        """'mean_f2 0.8712 at 0.5, 0.8891 at the fitted thresholds (per class, 0.15-0.45; at least one label
        an image); on rows left out of the fit: 0.8712 at 0.5, 0.8790 global, 0.8755 per class'."""
        spread = f"{self.values.min():g}-{self.values.max():g}" if self.values.min() < self.values.max() else f"{self.values.min():g}"
        one = "; at least one label an image" if self.at_least_one else ""
        line = f"{metric} {self.score_at_half:.4f} at 0.5, {self.score:.4f} at the fitted thresholds ({self.how}, {spread}{one})"
        if self.held_out:
            line += "; on rows left out of the fit: " + ", ".join(
                f"{score:.4f} {'at 0.5' if how == '0.5' else how}" for how, score in zip(HOWS, self.held_out))
        return line


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def apply(probs: np.ndarray, thresholds: Thresholds | None) -> np.ndarray:
    """0/1 [n, k]: each class at its threshold (0.5 without thresholds); with `at_least_one`, an image
    with no class over its threshold gets its most probable class."""
    probs = np.asarray(probs, dtype=np.float64)
    sets = TARGETS["multi"].decide(probs, None if thresholds is None else thresholds.values)
    if thresholds is not None and thresholds.at_least_one:
        empty = np.flatnonzero(~sets.any(axis=1))
        sets[empty, probs[empty].argmax(axis=1)] = 1
    return sets


def _improves(metric: Metric, new: float, old: float) -> bool:
    return metric.key(new) > metric.key(old) + 1e-12  # a tie keeps what is there


def _global(y: np.ndarray, probs: np.ndarray, metric: Metric) -> float:
    """The value of GRID that scores best as every class's threshold (0.5 unless one beats it)."""
    k = probs.shape[1]
    best, best_score = THRESHOLD, metric.of_labels(y, TARGETS["multi"].decide(probs, None), k)
    for t in GRID:
        score = metric.of_labels(y, TARGETS["multi"].decide(probs, np.full(k, t)), k)
        if _improves(metric, score, best_score):
            best, best_score = float(t), score
    return best


def epoch_score(y: np.ndarray, probs: np.ndarray, metric: Metric, target: str) -> float:
    """An epoch's validation score, and a cross-validation's of the out-of-fold predictions: for a
    thresholded target the metric at its best global threshold (0.5 unless one of GRID beats it), the
    metric of the probabilities otherwise. At 0.5 an untrained head that answers every class wins mean
    F2 (recall counts four times), so the best epoch is picked as the answers will be made, with a cut."""
    if not TARGETS[target].thresholded or metric.scores != "labels":
        return float(metric(y, probs))
    t = _global(y, probs, metric)
    return float(metric.of_labels(y, TARGETS["multi"].decide(probs, np.full(probs.shape[1], t)), probs.shape[1]))


def _ascend(y: np.ndarray, probs: np.ndarray, metric: Metric, values: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """Coordinate ascent over the `fitted` classes from `values`: each class's best value of GRID with
    the others held, PASSES times (fewer when a pass changes nothing)."""
    values = values.copy()
    sweep = metric.sweep(y, TARGETS["multi"].decide(probs, values))
    for _ in range(PASSES):
        moved = False
        for j in fitted:
            columns = probs[:, j:j + 1] >= GRID[None, :]
            scores = sweep.scores(j, columns)
            current = scores[int(np.abs(GRID - values[j]).argmin())]
            g = int(np.argmax([metric.key(s) for s in scores]))
            if _improves(metric, scores[g], current):
                values[j], moved = GRID[g], True
                sweep.set(j, columns[:, g])
        if not moved:
            break
    return values


def _fitted(y: np.ndarray, probs: np.ndarray, metric: Metric, how: str) -> Thresholds:
    """The thresholds of one of HOWS fitted on these rows (values and at_least_one; no scores)."""
    k = probs.shape[1]
    if how == "0.5":
        return Thresholds(np.full(k, THRESHOLD))
    values = np.full(k, _global(y, probs, metric))
    if how == "per class":
        values = _ascend(y, probs, metric, values, np.flatnonzero(y.sum(axis=0) >= MIN_POSITIVES))
    forced = metric.of_labels(y, apply(probs, Thresholds(values, True)), k)
    return Thresholds(values, _improves(metric, forced, metric.of_labels(y, apply(probs, Thresholds(values)), k)))


def _held_out(y: np.ndarray, probs: np.ndarray, metric: Metric) -> tuple[float, ...]:
    """Each way's score (HOWS' order) on answers it was not fitted on: fitted on PARTS - 1 stratified
    parts of the rows, deciding the part left out, in turn; the answers of all parts scored together."""
    part = kfold(y, PARTS, seed=0, name=str)
    sets = {how: np.zeros_like(y) for how in HOWS}
    for p in range(PARTS):
        held = part == p
        for how in HOWS:
            sets[how][held] = apply(probs[held], _fitted(y[~held], probs[~held], metric, how))
    return tuple(metric.of_labels(y, sets[how], y.shape[1]) for how in HOWS)


def fit_thresholds(y_true: np.ndarray, probs: np.ndarray, metric: Metric) -> Thresholds:
    """Thresholds a class that maximise `metric` (multi-hot y_true [n, k], probs [n, k]): the way of HOWS
    that scores best on rows left out of its fit, fitted on all of them."""
    y, probs = np.asarray(y_true, dtype=np.uint8), np.asarray(probs, dtype=np.float64)
    if y.ndim != 2 or y.shape != probs.shape or y.shape[1] < 2:
        raise FlowError(f"thresholds: labels of shape {y.shape} for probabilities of shape {probs.shape}")
    k = y.shape[1]
    at_half = metric(y, probs)
    if metric.scores == "probabilities":  # ranks, not sets: no cut to fit
        return Thresholds(np.full(k, THRESHOLD), False, at_half, at_half, "0.5")
    if len(y) < 2 * PARTS:  # too few rows to leave some out: the fit on all of them
        held_out, how = (), HOWS[-1]
    else:
        held_out, best = _held_out(y, probs, metric), 0
        for i in range(1, len(HOWS)):
            best = i if _improves(metric, held_out[i], held_out[best]) else best
        how = HOWS[best]
    found = _fitted(y, probs, metric, how)
    score = metric.of_labels(y, apply(probs, found), k)
    return Thresholds(found.values, found.at_least_one, at_half, score, how, held_out)


def thresholds_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / FILE


def write_thresholds(run_dir: str | Path, thresholds: Thresholds) -> Path:
    """Save the run's thresholds (atomically: a crash leaves the old file or the new one)."""
    return write_json(thresholds_file(run_dir), thresholds.to_json())


def read_thresholds(run_dir: str | Path, num_classes: int | None = None) -> Thresholds | None:
    """The run's thresholds; None when it has none (decide at 0.5); a damaged file (or one for another
    number of classes) is a one-line DataError naming it."""
    file = thresholds_file(run_dir)
    if not file.is_file():
        return None
    try:
        found = Thresholds.from_json(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # json's errors are ValueErrors
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{file}: not readable thresholds ({reason}); delete it to decide at 0.5, or train again") from None
    if num_classes is not None and len(found.values) != num_classes:
        raise DataError(f"{file}: {len(found.values)} thresholds for {num_classes} classes; train the run again")
    return found
