"""Temperature scaling of the written probabilities, for a competition scored by log loss.

Label smoothing caps every probability a model gives (at 0.9 + 0.1/K for epsilon 0.1), so an
accurate model still pays log loss on every image. One temperature T, fitted to the log loss of the
run's out-of-fold predictions (oof.csv: the validation fold, every fold of a cross-validation
run, or a blend's blended ones), undoes most of that without changing any arg-max:

    p_T = softmax(log(p) / T)        T < 1 sharpens, T > 1 softens

`flow submit` writes p_T and says how much T changed the fold's log loss. A run without out-of-fold
predictions (an ensemble of `--ensemble`, or probabilities from elsewhere), or with fewer than MIN_ROWS of them (a
temperature fitted on a handful of images is noise), is written as predicted, and said so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kaggle_flow.metrics import METRICS
from kaggle_flow.oof import read_oof
from kaggle_flow.runs import Ensemble, Run, RunFolder, load_run
from kaggle_flow.target import TARGETS

# The range searched. A fold the model gets all right pushes the fitted temperature towards 0 (certainty),
# and one wrong test image at certainty costs its whole log loss: 0.25 caps the sharpening (with label
# smoothing 0.1 and two classes, 0.95 becomes 0.99999), 4 the softening.
TEMPERATURES = (0.25, 4.0)
MIN_ROWS = 100  # out-of-fold predictions a temperature is fitted on, at the least


@dataclass(frozen=True)
class Calibration:
    temperature: float
    before: float  # the fold's log loss as predicted
    after: float  # and with the temperature
    source: Path  # the oof.csv it was fitted on
    skipped: str = ""  # why there is no temperature: the probabilities are written as predicted

    def apply(self, probs: np.ndarray) -> np.ndarray:
        return probs if self.skipped else scaled(probs, self.temperature)

    def line(self) -> str:
        if self.skipped:
            return f"Not calibrated for log loss: {self.skipped}; the probabilities are written as predicted"
        return (f"Calibrated for log loss: temperature {self.temperature:.3f} fitted on {self.source} "
                f"(out-of-fold log loss {self.before:.4f} -> {self.after:.4f})")


def _skipped(why: str, source: Path = Path()) -> Calibration:
    return Calibration(1.0, math.nan, math.nan, source, skipped=why)


def scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T), row by row."""
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-15, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def fit_temperature(labels: np.ndarray, probs: np.ndarray) -> float:
    """The temperature that minimizes the log loss of `probs` on `labels` (a bounded 1-D search on log T)."""
    from scipy.optimize import (
        minimize_scalar,  # heavy: only a log-loss submission calibrates
    )

    logloss = METRICS["logloss"]
    lo, hi = (math.log(t) for t in TEMPERATURES)
    found = minimize_scalar(lambda log_t: logloss(labels, scaled(probs, math.exp(log_t))), bounds=(lo, hi), method="bounded")
    return float(math.exp(found.x))


def calibration_for(run: RunFolder | None, metric: str) -> Calibration | None:
    """The temperature for a run's submission when the competition is scored by log loss (or why
    there is none: `skipped`), else None."""
    if metric != "logloss":
        return None
    if run is None or (isinstance(run, Ensemble) and not run.oof.is_file()):
        return _skipped("no out-of-fold predictions to fit a temperature on (an ensemble, or probabilities from elsewhere)")
    source: RunFolder = run
    if isinstance(run, Run) and run.config.full and run.config.full_from:  # a refit holds nothing out: its validated source's fold
        source = load_run(run.comp_dir / run.config.full_from)
    if not source.oof.is_file():
        return _skipped(f"no out-of-fold predictions in {source.path} to fit a temperature on")
    oof = read_oof(source.oof, len(run.config.classes), TARGETS[run.config.target])  # a blend's (flow blend): its blended out-of-fold predictions
    if len(oof) < MIN_ROWS:
        return _skipped(f"{len(oof)} out-of-fold predictions in {source.oof}, fewer than the {MIN_ROWS} a temperature is fitted on", source.oof)
    labels, probs = oof.labels, oof.probs
    temperature = fit_temperature(labels, probs)
    logloss = METRICS["logloss"]
    return Calibration(temperature, logloss(labels, probs), logloss(labels, scaled(probs, temperature)), source.oof)
