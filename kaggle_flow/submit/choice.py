"""Which run predicts the test set: the options `flow predict` and `flow submit` share, and the runs they name.

    run       a run id or folder (see runs.resolve_run); None: the run with the best validation score
    folds     "all": the cross-validation run named by `run` (or the parent of a fold), else the best one
    ensemble  comma-separated run ids: their mean, saved as a new runs/COMP/ensemble-TIME
    tta       also predict each image's test-time views (augment.tta_views) and average

Runs are only found and checked here (no paddle): every run is checked against the competition
before any is predicted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kaggle_flow.errors import FlowError, NotFoundError
from kaggle_flow.metrics import METRICS
from kaggle_flow.runs import Run, RunFolder, all_runs, resolve_run

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace


@dataclass(frozen=True)
class RunChoice:
    """The run (or runs) that predict, and whether with test-time augmentation; see the module docstring."""

    run: str | None = None
    tta: bool = False
    ensemble: str | None = None
    folds: str | None = None

    def check(self) -> None:
        """A one-line FlowError for options that do not go together."""
        if self.folds is not None and self.folds != "all":
            raise FlowError(f"--folds takes 'all' (got '{self.folds}')")
        if self.ensemble is not None and (self.run is not None or self.folds is not None):
            raise FlowError("--ensemble lists its runs: leave out --run and --folds")


def chosen_run(ws: Workspace, choice: RunChoice) -> RunFolder:
    """The one run a choice without --ensemble names, checked against the competition."""
    chosen = _cv_run(ws, choice.run) if choice.folds == "all" else resolve_run(ws, choice.run, best=True)
    chosen.check_fits(ws.comp)
    return chosen


def ensemble_members(ws: Workspace, ensemble: str) -> list[RunFolder]:
    """The runs --ensemble lists, each checked to fit the competition and to have weights."""
    names = [n.strip() for n in ensemble.split(",") if n.strip()]
    if len(names) < 2:
        raise FlowError(f"--ensemble needs at least two runs (got '{ensemble}')")
    members = [resolve_run(ws, name) for name in names]
    for member in members:  # every member checked before any is predicted
        member.check_fits(ws.comp)
        if not member.has_weights():
            raise NotFoundError(f"{member.path}: no trained weights yet, so it cannot be part of an ensemble")
    return members


def _cv_run(ws: Workspace, name: str | None) -> Run:
    """The cross-validation run for --folds all: the one named (or the parent of a fold), else the best."""
    hint = f"train one with `flow train {ws.comp.name} --folds all`"
    if name is not None:
        run = resolve_run(ws, name)
        for candidate in (run, run.parent) if isinstance(run, Run) else ():
            if candidate is not None and candidate.kind == "cv":
                return candidate
        raise FlowError(f"{run.path}: not a cross-validation run; {hint}")
    runs = [r for r in all_runs(ws.runs_dir) if isinstance(r, Run) and r.kind == "cv" and r.has_weights()]
    if not runs:
        raise NotFoundError(f"{ws.runs_dir}: no cross-validation run; {hint}")
    key = METRICS[ws.comp.metric].key
    scores = {r.name: r.summary.best_score for r in runs}
    return max(runs, key=lambda r: (scores[r.name] is not None, key(scores[r.name] or 0.0), r.name))
