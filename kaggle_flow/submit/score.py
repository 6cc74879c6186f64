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
from kaggle_flow.kinds import KINDS
from kaggle_flow.metrics import METRICS
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
    """Class indices of a solution: its label column, or the columns of its kind (a `probabilities`
    contest's solution: one 0/1 column per class with a single 1 in each row)."""
    labels = KINDS[comp.submission.kind].solution_labels(comp, frame, file)
    if labels is not None:
        return labels
    _require_columns(frame, [comp.submission.label_column], file)
    return _labels(frame, comp, file)


def _require_columns(frame: pd.DataFrame, columns: list[str], file: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(repr, frame.columns)) or "none"
        raise DataError(f"{file}: missing column {missing[0]!r} (found: {found})")


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
    return KINDS[comp.submission.kind].score(comp, scorer, y_true, sub, order, file)  # the rows read as its kind writes them


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
