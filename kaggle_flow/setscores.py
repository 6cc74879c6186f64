"""F scores of label sets (multi-label answers, 0/1 [n, k] against multi-hot truth) and the sweep that
fits thresholds with them: `FScore` scores sets as mean F2, micro or macro F1 do (metrics.py's
entries hold one), `Sweep` tries one class column after another, recounting only that column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


def f_beta(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, beta: float) -> np.ndarray:
    """F-beta of counts: (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp); 0 where all three are 0."""
    num = (1 + beta**2) * np.asarray(tp, dtype=np.float64)
    den = num + beta**2 * np.asarray(fn, dtype=np.float64) + np.asarray(fp, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.shape(den)), where=den > 0)


Counts = tuple[np.ndarray, np.ndarray, np.ndarray]  # true positives, false positives, false negatives


def _set_counts(y: np.ndarray, d: np.ndarray, axis: int | None) -> Counts:
    """True positives, false positives and false negatives of 0/1 sets, summed along `axis`."""
    y, d = y.astype(bool), d.astype(bool)
    return (y & d).sum(axis=axis), (~y & d).sum(axis=axis), (y & ~d).sum(axis=axis)


class Sweep:
    """0/1 sets [n, k] whose class columns are tried and set one at a time: `scores(j, columns)` gives
    the F score with column j replaced by each candidate, `set(j, column)` keeps one. The sets' counts
    are kept and only column j is recounted (a class of iMet's 1,103 costs one column, not all)."""

    def __init__(self, y: np.ndarray, sets: np.ndarray, f: FScore) -> None:
        self.y, self.sets, self.f = y, sets.copy(), f
        self.counts = f.counts(y, self.sets)

    def scores(self, j: int, columns: np.ndarray) -> np.ndarray:
        """[G] scores of the sets with column j replaced by each of `columns` [n, G]."""
        return self.f.sweep(self.y, self.sets, j, np.asarray(columns, dtype=bool), self.counts)

    def set(self, j: int, column: np.ndarray) -> None:
        column = np.asarray(column, dtype=bool)
        self.counts = self.f.recount(self.counts, self.y[:, j], self.sets[:, j], column, j)
        self.sets[:, j] = column


@dataclass(frozen=True)
class FScore:
    """F-beta of 0/1 sets against multi-hot truth: each image's, averaged ("samples"); all decisions
    pooled ("micro"); each class's, averaged over the classes true or predicted somewhere ("macro").

    `sweep` gives the scores of one class column replaced by candidate columns from the sets' kept
    `counts`, touching only the rows that change: fitting a threshold a class calls it once a class
    and pass (thresholds.py); `recount` updates the counts when a column moves.
    """

    beta: float
    average: Literal["samples", "micro", "macro"]

    def __call__(self, y: np.ndarray, d: np.ndarray) -> float:
        if self.average == "samples":
            return float(f_beta(*_set_counts(y, d, 1), self.beta).mean()) if len(y) else 0.0
        if self.average == "micro":
            return float(f_beta(*_set_counts(y, d, None), self.beta))
        tp, fp, fn = _set_counts(y, d, 0)
        present = (tp + fp + fn) > 0  # a class absent from both would add a meaningless 0
        return float(f_beta(tp, fp, fn, self.beta)[present].mean()) if present.any() else 0.0

    @property
    def axis(self) -> int | None:
        """The axis `counts` sums along: each image's (samples), all (micro), each class's (macro)."""
        return {"samples": 1, "micro": None, "macro": 0}[self.average]

    def counts(self, y: np.ndarray, d: np.ndarray) -> Counts:
        return _set_counts(y, d, self.axis)

    def recount(self, counts: Counts, yj: np.ndarray, old: np.ndarray, new: np.ndarray, j: int) -> Counts:
        """`counts` after class j's column (truth yj) went from `old` to `new`."""
        if self.average == "macro":
            moved = tuple(c.copy() for c in counts)
            for c, v in zip(moved, _set_counts(yj, new, None)):
                c[j] = v
            return moved  # type: ignore[return-value]
        axis = None if self.axis is None else 1
        before, after = (_set_counts(yj[:, None], col[:, None], axis) for col in (old, new))
        return tuple(c - b + a for c, b, a in zip(counts, before, after))  # type: ignore[return-value]

    def sweep(self, y: np.ndarray, d: np.ndarray, j: int, columns: np.ndarray, counts: Counts) -> np.ndarray:
        """[G] scores of the sets `d` with column j replaced by each of `columns` [n, G]; `counts`: those
        of (y, d), kept by the caller (`Sweep`)."""
        yj, c = y[:, j].astype(bool)[:, None], np.asarray(columns, dtype=bool)
        dj = d[:, j].astype(bool)
        tp, fp, fn = counts
        if self.average == "macro":
            tp, fp, fn = (np.delete(v, j) for v in (tp, fp, fn))
            present = (tp + fp + fn) > 0
            others = f_beta(tp, fp, fn, self.beta)[present].sum()
            tpj, fpj, fnj = (yj & c).sum(0), (~yj & c).sum(0), (yj & ~c).sum(0)
            n_present = present.sum() + ((tpj + fpj + fnj) > 0)
            return np.divide(others + f_beta(tpj, fpj, fnj, self.beta), n_present,
                             out=np.zeros(c.shape[1]), where=n_present > 0)
        axis = None if self.axis is None else 1
        tp, fp, fn = (a - b for a, b in zip((tp, fp, fn), _set_counts(yj, dj[:, None], axis)))
        if self.average == "micro":
            return f_beta(tp + (yj & c).sum(0), fp + (~yj & c).sum(0), fn + (yj & ~c).sum(0), self.beta)
        whole = f_beta(tp + (yj[:, 0] & dj), fp + (~yj[:, 0] & dj), fn + (yj[:, 0] & ~dj), self.beta)
        rows = (c != dj[:, None]).any(axis=1)  # only these images' scores move
        yr, cr = yj[rows], c[rows]
        moved = f_beta(tp[rows, None] + (yr & cr), fp[rows, None] + (~yr & cr), fn[rows, None] + (yr & ~cr), self.beta)
        return (whole.sum() - whole[rows].sum() + moved.sum(axis=0)) / max(len(y), 1)
