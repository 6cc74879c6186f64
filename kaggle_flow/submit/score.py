"""Local scoring: a submission CSV against the test labels, where they are known.

The competition's metric comes from kaggle_flow.metrics, by the name its TOML gives.
`score_submission` matches rows by id, so row order does not matter, and reads the submission as
its kind writes it: labels (scored by a label metric, or as a one-guess ranking by map@K), the
probability of the positive class or one probability per class (scored by any metric: label
metrics take the arg-max), the top k labels (map@K; a label metric scores the first). A label file
scored by a probability metric is one line saying the metric needs probabilities. `local_score` is
`flow score`: a submission of the workspace scored and its ledger row filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kaggle_flow import console
from kaggle_flow.competition import Competition
from kaggle_flow.errors import DataError, FlowError, NotFoundError
from kaggle_flow.fileio import os_error_line, read_csv
from kaggle_flow.metrics import (
    METRICS,
    Metric,
    mean_average_precision,
    needs_probabilities,
)
from kaggle_flow.submit.ledger import LEDGER, ledger_file, set_local_score

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace


def solution_file(comp: Competition, data_dir: Path) -> Path | None:
    """data/COMP/<submission.solution> when the test labels are known locally, else None."""
    if not comp.submission.solution:
        return None
    file = Path(data_dir) / comp.submission.solution
    return file if file.is_file() else None


def _read(file: Path, comp: Competition, columns: list[str]) -> pd.DataFrame:
    frame = read_csv(file, columns)
    ids = frame[comp.submission.id_column].str.strip()
    dup = ids.duplicated().to_numpy()
    if dup.any():
        pos = int(dup.nonzero()[0][0])
        raise DataError(f"{file} line {pos + 2}: duplicate id '{ids.iloc[pos]}'")
    return frame


def _labels(frame: pd.DataFrame, comp: Competition, file: Path) -> np.ndarray:
    """Class indices from a solution's label column, holding indices or class names."""
    values = frame[comp.submission.label_column].str.strip()
    names = {name: i for i, name in enumerate(comp.classes)}
    out = np.empty(len(values), dtype=int)
    for pos, value in enumerate(values):
        if comp.submission.label_form == "name" and value in names:
            out[pos] = names[value]
        elif value.isdigit() and int(value) < comp.num_classes:
            out[pos] = int(value)
        elif value in names:
            out[pos] = names[value]
        else:
            raise DataError(f"{file} line {pos + 2}: label '{value}' is not a class")
    return out


def _solution_labels(frame: pd.DataFrame, comp: Competition, file: Path) -> np.ndarray:
    """Class indices of a solution: its label column, or (a `probabilities` contest's solution)
    one 0/1 column per class with a single 1 in each row."""
    sub = comp.submission
    columns = sub.value_columns(comp.classes)
    if sub.label_column in frame.columns or sub.kind != "probabilities" or not set(columns) <= set(frame.columns):
        _require_columns(frame, [sub.label_column], file)
        return _labels(frame, comp, file)
    one_hot = frame[columns].apply(lambda c: c.str.strip())
    ok = one_hot.isin(["0", "1"]).all(axis=1).to_numpy() & (one_hot == "1").sum(axis=1).eq(1).to_numpy()
    if not ok.all():
        pos = int((~ok).nonzero()[0][0])
        raise DataError(f"{file} line {pos + 2}: not one class marked 1 in {', '.join(columns)}")
    return (one_hot == "1").to_numpy().argmax(axis=1)


def _require_columns(frame: pd.DataFrame, columns: list[str], file: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(repr, frame.columns)) or "none"
        raise DataError(f"{file}: missing column {missing[0]!r} (found: {found})")


def _label_index(comp: Competition) -> tuple[dict[str, int], str]:
    """The labels the submission form writes -> class index, and how to say what is allowed."""
    if comp.submission.label_form == "name":
        return {name: i for i, name in enumerate(comp.classes)}, f"a class name of '{comp.name}': {', '.join(comp.classes)}"
    hint = f"a class index 0-{comp.num_classes - 1}, as the submission format of '{comp.name}' writes labels"
    return {str(i): i for i in range(comp.num_classes)}, hint


def _submitted_labels(frame: pd.DataFrame, comp: Competition, file: Path) -> np.ndarray:
    """Class indices from a submission's label column, in the one form the site reads
    (`[submission] label_form`): a class name in an index column would score there as a wrong row,
    or not at all, so it is an error here, not a guess."""
    values = frame[comp.submission.label_column].str.strip()
    allowed, hint = _label_index(comp)
    bad = (~values.isin(set(allowed))).to_numpy()
    if bad.any():
        pos = int(bad.nonzero()[0][0])
        value = values.iloc[pos]
        also = f"; '{value}' is class {comp.classes.index(value)}" if comp.submission.label_form == "index" and value in comp.classes else ""
        raise DataError(f"{file} line {pos + 2}: label '{value}' is not {hint}{also}")
    return values.map(allowed).to_numpy(dtype=int)


def _submitted_ranking(frame: pd.DataFrame, comp: Competition, file: Path) -> np.ndarray:
    """[n, k] class indices of a top_k column, best first; -1 pads a row of fewer labels."""
    allowed, hint = _label_index(comp)
    k = comp.submission.k
    out = np.full((len(frame), k), -1, dtype=int)
    for pos, value in enumerate(frame[comp.submission.label_column]):
        guesses = value.split()
        bad = [g for g in guesses if g not in allowed]
        if bad or not guesses or len(guesses) > k:
            what = f"label '{bad[0]}' is not {hint}" if bad else f"'{value}' is not 1 to {k} labels"
            raise DataError(f"{file} line {pos + 2}: {what}")
        out[pos, : len(guesses)] = [allowed[g] for g in guesses]
    return out


def _submitted_probabilities(frame: pd.DataFrame, columns: list[str], file: Path) -> np.ndarray:
    """[n, len(columns)] probabilities; a one-line error naming the line, column and value outside [0, 1]."""
    out = np.empty((len(frame), len(columns)))
    for c, column in enumerate(columns):
        numbers = pd.to_numeric(frame[column].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad = ~((numbers >= 0) & (numbers <= 1))
        if bad.any():
            pos = int(bad.nonzero()[0][0])
            raise DataError(f"{file} line {pos + 2}: column '{column}' value '{frame[column].iloc[pos]}' is not a probability in [0, 1]")
        out[:, c] = numbers
    return out


def _score_rows(comp: Competition, metric: Metric, y_true: np.ndarray, sub: pd.DataFrame, order: np.ndarray, file: Path) -> float:
    """The metric of the submission's rows read as its kind writes them; `order`: the row of `sub`
    for each solution row (values are read in file order, so an error names the file's line)."""
    fmt = comp.submission
    if fmt.kind == "probability":
        p = _submitted_probabilities(sub, [fmt.label_column], file)[order, 0]
        positive = (y_true == fmt.positive_index(comp.classes)).astype(int)  # the class against the rest
        return metric(positive, np.column_stack([1 - p, p]))
    if fmt.kind == "probabilities":
        return metric(y_true, _submitted_probabilities(sub, fmt.value_columns(comp.classes), file)[order])
    ranked = _submitted_ranking(sub, comp, file) if fmt.kind == "top_k" else _submitted_labels(sub, comp, file)[:, None]
    ranked = ranked[order]
    if metric.k is not None:
        return mean_average_precision(y_true, ranked, metric.k)
    if metric.scores != "labels":
        raise FlowError(f"{file}: {needs_probabilities(metric.name)}; this submission holds labels (kind {fmt.kind})")
    return metric.of_labels(y_true, ranked[:, 0], comp.num_classes)


def score_submission(comp: Competition, file: Path, solution: Path, metric: str | None = None) -> float:
    """Score a submission CSV against a solution CSV with the competition's metric, matching by id.

    Example:
        >>> score_submission(comp, Path("submissions/mnist/20250101-120000_r1.csv"), Path("data/mnist/solution.csv"))
        0.987
    """
    scorer = METRICS[metric or comp.metric]
    id_col = comp.submission.id_column
    sub = _read(file, comp, [id_col, *comp.submission.value_columns(comp.classes)])
    sol = _read(solution, comp, [id_col])
    sub_ids = sub[id_col].str.strip()
    sol_ids = sol[id_col].str.strip()
    missing = ~sol_ids.isin(set(sub_ids))
    if missing.any():
        n = int(missing.sum())
        raise FlowError(f"{file}: id '{sol_ids[missing].iloc[0]}' of {solution} has no row ({n} missing)")
    extra = ~sub_ids.isin(set(sol_ids))
    if extra.any():
        pos = int(extra.to_numpy().nonzero()[0][0])
        raise FlowError(f"{file} line {pos + 2}: id '{sub_ids.iloc[pos]}' is not in {solution}")
    y_true = _solution_labels(sol, comp, solution)
    order = pd.Series(np.arange(len(sub)), index=sub_ids.to_numpy()).loc[sol_ids.to_numpy()].to_numpy()
    return _score_rows(comp, scorer, y_true, sub, order, file)


def newest_submission(submissions_dir: Path) -> Path:
    """The newest submission CSV of a competition (names start with the time)."""
    files = sorted(p for p in Path(submissions_dir).glob("*.csv") if p.name != LEDGER)
    if not files:
        raise NotFoundError(f"{submissions_dir}: no submissions yet; run `flow submit` first")
    return files[-1]


@dataclass(frozen=True)
class LocalScore:
    file: Path  # the submission scored
    metric: str
    value: float
    in_ledger: bool  # whether its ledger row now has the score
    higher_is_better: bool = True  # the metric's direction (log loss: lower is better)

    @property
    def line(self) -> str:
        """Local METRIC of FILE: VALUE, and the direction when lower is better."""
        direction = "" if self.higher_is_better else " (lower is better)"
        return f"Local {self.metric} of {self.file}: {self.value:.4f}{direction}"


def local_score(ws: Workspace, file: Path | None = None) -> LocalScore:
    """Score a submission (default: the newest) against the competition's local test labels.

    A file of submissions/COMP gets the score in its ledger row (where the folder can be written).
    A one-line error when the labels are not known locally.
    """
    solution = solution_file(ws.comp, ws.ensure_data())
    if solution is None:
        name = ws.comp.submission.solution or "solution.csv"
        raise FlowError(f"no local labels for '{ws.comp.name}' ({ws.data_dir / name} not found): score it on the competition site")
    file = Path(file) if file is not None else newest_submission(ws.submissions_dir)
    value = score_submission(ws.comp, file, solution)
    in_ledger = file.parent.resolve() == ws.submissions_dir.resolve() and _note_in_ledger(ws, file, value)
    return LocalScore(file, ws.comp.metric, value, in_ledger, METRICS[ws.comp.metric].higher_is_better)


def _note_in_ledger(ws: Workspace, file: Path, value: float) -> bool:
    """Fill the ledger row, best effort: scoring only reads, so a read-only folder still gets the
    score, with a warning that the ledger could not keep it."""
    try:
        return set_local_score(ws.submissions_dir, file, value)
    except OSError as exc:
        line = os_error_line(exc)
        if line is None:
            raise
        console.warn(f"the score is not in {ledger_file(ws.submissions_dir)}: {line}")
        return False
