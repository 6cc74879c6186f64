"""`flow blend`: weights for several runs, chosen on their out-of-fold predictions, saved as an ensemble.

Ensemble selection (Caruana et al., 2004), greedy hill climbing with replacement, on the runs' oof.csv:

    start from the best single run; at each step add the member (one already in included) whose
    addition gives the best CV; keep the best blend seen; stop after `steps` members in all, or
    after `patience` steps without a better blend.        weight of a run = times chosen / members chosen

The start is the best run alone and only a strictly better blend replaces it, so the blend's CV is
never below its best member's. Adding a member again is what gives weights finer than 1/n; the
weights are few and coarse (at most `steps` steps), which keeps them from fitting the noise of the
out-of-fold rows as freely fitted weights would.

Rank averaging (metrics `auc` and `mean_auc`, RANKED): ROC AUC depends on the order of the
predictions alone, so members are averaged as ranks: each class column of each member becomes its
ranks among the rows, scaled to [0, 1] (ties: the mean rank; `scaled_ranks`), and those are
averaged with the weights. A sharp and a soft model then weigh what their orders say, not what their
scales do. With two classes the positive column is ranked and the other is 1 minus it, so rows still
sum to 1; with more, a `probabilities` submission scales each row to sum to 1, as its check requires.
`flow submit` of the blend ranks each member's test predictions among the test images the same way.

The blend is an ensemble run folder (runs.Ensemble) that `flow submit --run ENSEMBLE` predicts:

    config.json   members and weights (members never chosen are left out), `rank` for rank averaging
    oof.csv       the blended out-of-fold predictions (rank means for AUC)
    summary.json  best_score: the blend's CV

Runs blend only when validated on the same rows (the same oof ids with the same labels): a
different fold, another folds.csv, another competition or class list is one line, nothing written.
Without runs named: the finished training runs of the current folds (runs/COMP/folds.csv), the
largest group of them validated on the same rows; the others are left out and named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kaggle_flow import console
from kaggle_flow.errors import FlowError, NotFoundError
from kaggle_flow.fileio import write_json
from kaggle_flow.metrics import METRICS, Metric
from kaggle_flow.oof import OutOfFold, read_oof, write_oof
from kaggle_flow.run_state import FINISHED, Summary, state_of
from kaggle_flow.runs import Ensemble, Run, RunFolder, create_ensemble, resolve_run, scan_runs
from kaggle_flow.target import TARGETS, Target

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

STEPS = 50  # members chosen at most (with replacement): weights in steps of 1/50 at the finest
PATIENCE = 5  # steps without a better blend before the search stops
RANKED = ("auc", "mean_auc")  # metrics of the order alone: their blends average ranks


def scaled_ranks(probs: np.ndarray) -> np.ndarray:
    """Each column's ranks among the rows, scaled to [0, 1] (ties: their mean rank); with two
    columns, the first is 1 minus the second's, so that rows sum to 1."""
    probs = np.asarray(probs, dtype=np.float64)
    ranks = (pd.DataFrame(probs).rank(method="average").to_numpy() - 1) / max(len(probs) - 1, 1)
    if probs.shape[1] == 2:
        ranks[:, 0] = 1 - ranks[:, 1]
    return ranks


def combine(probs: Sequence[np.ndarray], weights: Sequence[float], *, rank: bool = False) -> np.ndarray:
    """The weighted mean of the members' [n, K] predictions (of their `scaled_ranks` with `rank`)."""
    w = np.asarray(weights, dtype=np.float64)
    parts = np.stack([scaled_ranks(p) if rank else np.asarray(p, dtype=np.float64) for p in probs])
    return np.tensordot(w / w.sum(), parts, axes=1)


def hill_climb(members: Sequence[np.ndarray], labels: np.ndarray, metric: Metric, *,
               steps: int = STEPS, patience: int = PATIENCE) -> np.ndarray:
    """How many times each member is chosen in the best blend found (see the module docstring).

    `members` are the [n, K] predictions to average (already ranked for a RANKED metric); a tie
    goes to the earlier member, and a blend must beat the best so far to replace it.
    """
    members = [np.asarray(m, dtype=np.float64) for m in members]

    def best_of(scores: list[float]) -> int:
        return max(range(len(scores)), key=lambda i: (metric.key(scores[i]), -i))

    singles = [metric(labels, m) for m in members]
    first = best_of(singles)
    one = np.eye(len(members), dtype=np.int64)
    counts = one[first].copy()
    best_counts, best_score, stale = counts.copy(), singles[first], 0
    while counts.sum() < steps and stale < patience:
        # each trial is scored as `combine` will write it: a running mean rounds differently, and on
        # tied ranks those last bits can move a score
        trials = [metric(labels, combine(members, counts + one[i])) for i in range(len(members))]
        pick = best_of(trials)
        counts[pick] += 1
        if metric.better(trials[pick], best_score):
            best_counts, best_score, stale = counts.copy(), trials[pick], 0
        else:
            stale += 1
    return best_counts


# --- the runs of a blend -----------------------------------------------------------------------


def _oof_of(run: RunFolder, num_classes: int, target: Target = TARGETS["single"]) -> OutOfFold:
    """A run's out-of-fold predictions by id; a one-line error when oof.csv is missing or unreadable."""
    if not run.oof.is_file():
        raise NotFoundError(f"{run.path}: no out-of-fold predictions ({run.oof.name}) to choose weights on")
    try:
        oof = read_oof(run.oof, num_classes, target)
    except (OSError, ValueError, KeyError) as exc:
        raise FlowError(f"{run.oof}: not readable out-of-fold predictions ({str(exc).splitlines()[0]})") from None
    if not np.isfinite(oof.probs).all():
        raise FlowError(f"{run.oof}: NaN or infinite probabilities (a run that diverged); it cannot be blended")
    if len(set(oof.ids)) != len(oof.ids):
        raise FlowError(f"{run.oof}: an id is there twice; out-of-fold predictions hold each validation image once")
    order = np.argsort(oof.ids, kind="stable")
    return OutOfFold(oof.ids[order], oof.labels[order], oof.preds[order], oof.probs[order])


def same_rows(runs: Sequence[RunFolder], oofs: Sequence[OutOfFold]) -> None:
    """A one-line FlowError unless every run was validated on the first one's rows, with its labels."""
    for run, oof in zip(runs[1:], oofs[1:]):
        if not np.array_equal(oof.ids, oofs[0].ids):
            only = len(set(oof.ids) - set(oofs[0].ids))
            raise FlowError(f"{run.id} and {runs[0].id} were validated on different rows ({only} of its {len(oof)} "
                            f"out-of-fold ids are not in {runs[0].id}'s {len(oofs[0])}: another fold or folds.csv); "
                            "blend runs of the same folds")
        if not np.array_equal(oof.labels, oofs[0].labels):
            at = int(np.flatnonzero((oof.labels != oofs[0].labels).reshape(len(oof), -1).any(axis=1))[0])
            raise FlowError(f"{run.id} and {runs[0].id} disagree on the label of '{oof.ids[at]}' "
                            "(folds made from other data); blend runs of the same folds")


def named_runs(ws: Workspace, names: Sequence[str]) -> list[RunFolder]:
    """The runs named on the command line (each once), each checked to fit the competition and to predict."""
    runs = [resolve_run(ws, name) for name in dict.fromkeys(names)]
    for run in runs:  # every run checked before anything is read
        run.check_fits(ws.comp)
        if not run.has_weights():
            raise NotFoundError(f"{run.path}: no trained weights, so it cannot be part of a blend")
    return runs


def _unusable(run: Run, ws: Workspace) -> str | None:
    """Why a training run takes no part in a blend of the current runs (None: it can)."""
    if run.config.competition != ws.comp.name or list(run.config.classes) != list(ws.comp.classes):
        return "another competition or class list"
    state = state_of(run)
    if state.damaged or state.status not in FINISHED:
        return "damaged" if state.damaged else state.status
    if not run.has_weights():
        return "no weights"
    return None if run.oof.is_file() else "no oof.csv"


def _current_ids(ws: Workspace) -> dict[str, int] | None:
    """id -> fold of runs/COMP/folds.csv as it is now (None without one)."""
    if not ws.folds_file().is_file():
        return None
    frame = pd.read_csv(ws.folds_file(), dtype={"id": str})
    return dict(zip(frame["id"], frame["fold"].astype(int)))


def current_runs(ws: Workspace, num_classes: int, target: Target = TARGETS["single"]) -> tuple[list[Run], list[OutOfFold], list[str]]:
    """The finished training runs of the current folds validated on the same rows (the largest such
    group; a tie: the newest run's), their out-of-fold predictions, and the others as 'RUN (why)'."""
    runs, damaged = scan_runs(ws.runs_dir)
    left = [f"{d.name} (damaged)" for d in damaged]
    folds = _current_ids(ws)
    groups: dict[bytes, list[tuple[Run, OutOfFold]]] = {}
    for run in runs:
        if not isinstance(run, Run) or run.kind == "full":
            continue  # an ensemble, a refit on every row: no out-of-fold predictions of their own
        why = _unusable(run, ws)
        oof = None
        if why is None:
            try:
                oof = _oof_of(run, num_classes, target)
            except FlowError:
                why = "unusable oof.csv"
        if oof is not None and folds is not None and not all(
                folds.get(i, -1) == run.config.fold or (run.kind == "cv" and i in folds) for i in oof.ids):
            why = "validated on other folds than folds.csv"
        if why is not None or oof is None:
            left.append(f"{run.id} ({why})")
            continue
        groups.setdefault("\n".join(oof.ids).encode(), []).append((run, oof))
    chosen = max(groups.values(), key=lambda g: (len(g), runs.index(g[-1][0])), default=[])
    left += [f"{r.id} (validated on other rows)" for g in groups.values() if g is not chosen for r, _ in g]
    return [r for r, _ in chosen], [o for _, o in chosen], left


# --- flow blend ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blend:
    """What `flow blend` found and wrote: the runs, their CVs, the weights, the ensemble folder."""

    runs: list[RunFolder]  # every run considered, in the order given (or found)
    scores: list[float]  # each run's CV on the out-of-fold rows
    weights: list[float]  # each run's weight in the blend (0: never chosen)
    equal_score: float  # the CV of the equal-weight mean of them all
    score: float  # the blend's CV
    metric: str
    rank: bool  # ranks averaged (RANKED metrics)
    rows: int  # out-of-fold rows the weights were chosen on
    ensemble: Ensemble  # the folder written: runs/COMP/ensemble-TIME
    left_out: list[str]  # without runs named: the runs not used, 'RUN (why)'


def blend_runs(ws: Workspace, names: Sequence[str] = (), *, steps: int = STEPS, patience: int = PATIENCE) -> Blend:
    """Choose weights for the runs named (none: the finished runs of the current folds) by hill
    climbing on their out-of-fold predictions, and write the blend as an ensemble run folder.

    Example:
        >>> blend_runs(ws, ["20250101-120000-smallcnn-f0", "20250101-130000-resnet18-f0"]).score
    """
    metric, k, target = METRICS[ws.comp.metric], ws.comp.num_classes, TARGETS[ws.comp.target]
    if names:
        runs, left = named_runs(ws, names), []
        oofs = [_oof_of(run, k, target) for run in runs]
    else:
        runs, oofs, left = current_runs(ws, k, target)  # type: ignore[assignment]
    if len(runs) < 2:
        found = ", ".join(r.id for r in runs) or "none"
        unused = f"; left out: {console.shortlist(left)}" if left else ""
        raise FlowError(f"a blend needs two runs validated on the same rows (found {len(runs)}: {found}{unused}); "
                        f"train another with `flow train {ws.comp.name}`")
    same_rows(runs, oofs)
    rank, labels = metric.name in RANKED, oofs[0].labels
    members = [scaled_ranks(o.probs) if rank else o.probs for o in oofs]
    counts = hill_climb(members, labels, metric, steps=steps, patience=patience)
    weights = (counts / counts.sum()).tolist()
    blended = combine(members, weights)
    chosen = [i for i, c in enumerate(counts) if c]
    ensemble = create_ensemble(ws.runs_dir, [runs[i] for i in chosen], ws.comp, weights=[weights[i] for i in chosen], rank=rank)
    write_oof(ensemble.oof, OutOfFold(oofs[0].ids, labels, target.decide(blended), blended), target)
    score = metric(labels, blended)
    write_json(ensemble.summary_file, Summary(status="finished", metric=metric.name, best_score=score).model_dump())
    return Blend(list(runs), [metric(labels, o.probs) for o in oofs], weights, metric(labels, combine(members, [1.0] * len(runs))),
                 score, metric.name, rank, len(labels), ensemble, left)
