"""`flow review`: what a trained run's out-of-fold predictions say about the data and the model.

    runs/COMP/RUN/review/
      top_losses.png      the images of the highest cross-entropy (label, predicted, its probability)
      confused.png        the most confused class pairs (label -> predicted, their count), a few images each
      label_issues.png    the likeliest label errors, most likely first
      label_issues.csv    id, label, suggested, score: cleanlab's ranking (score = its label quality
                          score, the probability of the given label: lower = more likely wrong)

Only oof.csv is read (oof.py), never a model: no paddle. A cross-validation run's predictions cover
every training row; a single run's only its validation fold. Label issues are cleanlab's
`find_label_issues` ranked by self-confidence. A multi-label run (target "multi") is reviewed as
sets: its loss is the binary cross entropy averaged over the classes, its answers the classes at the
run's thresholds (thresholds.json), its label issues cleanlab's multi-label ones
(`multi_label=True`, scored by cleanlab.multilabel_classification); confused pairs are a
single-label view, left out. `flow review --exclude` turns the list (or a CSV of
ids edited by hand) into runs/COMP/exclude.json, which later training follows (exclusion.py).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kaggle_flow.errors import DataError, FlowError, NotFoundError
from kaggle_flow.exclusion import Exclusion, write_exclusion
from kaggle_flow.fileio import read_csv, write_csv
from kaggle_flow.oof import OutOfFold, read_oof
from kaggle_flow.runs import Run, load_run, resolve_run
from kaggle_flow.submit.review_plots import Tile, gallery, rows_of
from kaggle_flow.table.layouts import labelled
from kaggle_flow.target import TARGETS, Target
from kaggle_flow.thresholds import apply, read_thresholds

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

REVIEW = "review"  # the folder in the run's
ISSUES_CSV = "label_issues.csv"
PAIRS = 6  # confused pairs drawn, and images of each
PER_PAIR = 5


@dataclass(frozen=True)
class Review:
    """What `flow review` found in a run's out-of-fold predictions, and the files it wrote."""

    run: Run
    scope: str  # the one line: which rows the predictions cover
    issues: pd.DataFrame  # id, label, suggested, score: every label issue, most likely first
    losses: pd.DataFrame  # id, label, predicted, probability, loss: the top losses, highest first
    pairs: pd.DataFrame  # label, predicted, count: the most confused pairs
    rows: int  # rows reviewed
    files: list[Path] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # id -> why its image was left out of a gallery

    @property
    def folder(self) -> Path:
        return self.run.path / REVIEW


def reviewed_run(ws: Workspace, name: str | None) -> tuple[Run, str]:
    """The run to review and the line saying which rows its predictions cover; one line for a run without them.

    Default: the best run, as `flow submit` picks it (a full refit: the validated run it refits).
    """
    run = resolve_run(ws, name, best=True)
    train = f"flow train {ws.comp.name}"
    if not isinstance(run, Run):
        raise FlowError(f"{run.path}: an ensemble, no out-of-fold predictions of its own; review one of its members (--run)")
    if name is None and run.kind == "full" and run.config.full_from:
        run = load_run(run.comp_dir / run.config.full_from)  # type: ignore[assignment]  # full_from names a training run
    if run.kind == "full":
        raise FlowError(f"{run.path}: a full refit holds nothing out, so it has no out-of-fold predictions; review the run it refits "
                        f"(--run {run.config.full_from}) or train a validated run: {train} --folds all")
    run.check_fits(ws.comp)
    if not run.oof.is_file():
        raise NotFoundError(f"{run.path}: no out-of-fold predictions (oof.csv; the run never finished validating); "
                            f"train a validated run first: {train} --folds all (or {train})")
    if run.kind == "cv":
        return run, f"Reviewing {run.id}: a cross-validation run, whose out-of-fold predictions cover every training row"
    return run, (f"Reviewing {run.id}: a single fold, so only its validation rows (fold {run.config.fold}); "
                 f"`{train} --folds all` reviews every training row")


def _target_of(oof: OutOfFold) -> Target:
    """The target whose form oof.csv's labels have: sets [N, K] or class indices [N]."""
    return TARGETS["multi" if oof.labels.ndim == 2 else "single"]


def _multi_label_issues(oof: OutOfFold, names: list[str], answers: np.ndarray) -> pd.DataFrame:
    """id, label, suggested, score of a multi-label run: cleanlab's multi-label issues, most likely first."""
    from cleanlab.filter import find_label_issues  # heavy (scikit-learn): only `flow review` loads it
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    sets = [[int(j) for j in np.flatnonzero(row)] for row in oof.labels]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ranked = find_label_issues(sets, oof.probs, multi_label=True, return_indices_ranked_by="self_confidence", n_jobs=1)
            scores = get_label_quality_scores(sets, oof.probs)
    except (ValueError, AssertionError) as exc:
        raise FlowError(f"cleanlab cannot rank these out-of-fold predictions: {str(exc).strip().splitlines()[0]}") from None
    ranked = np.asarray(ranked, dtype=int)
    multi = TARGETS["multi"]
    return pd.DataFrame({
        "id": oof.ids[ranked], "label": [multi.describe(multi.format(oof.labels[i]), names) for i in ranked],
        "suggested": [multi.describe(multi.format(answers[i]), names) for i in ranked], "score": scores[ranked],
    })


def confused_pairs(oof: OutOfFold, names: list[str], top: int = PAIRS) -> pd.DataFrame:
    """label, predicted, count: the most frequent mistakes (given label -> predicted class), most first."""
    wrong = pd.DataFrame({"true": oof.labels, "pred": oof.preds})
    wrong = wrong[wrong["true"] != wrong["pred"]]
    counts = wrong.value_counts().reset_index(name="count").sort_values(["count", "true", "pred"], ascending=[False, True, True])
    counts = counts.head(top)
    return pd.DataFrame({"label": [names[i] for i in counts["true"]], "predicted": [names[i] for i in counts["pred"]],
                         "true_index": counts["true"].to_numpy(), "pred_index": counts["pred"].to_numpy(), "count": counts["count"].to_numpy()})


def label_issues(oof: OutOfFold, names: list[str], answers: np.ndarray | None = None) -> pd.DataFrame:
    """id, label, suggested, score: cleanlab's likely label errors, most likely first (`answers`: a
    multi-label run's decided sets, the suggestion of each row)."""
    if _target_of(oof).thresholded:
        return _multi_label_issues(oof, names, oof.preds if answers is None else answers)
    from cleanlab.filter import find_label_issues  # heavy (scikit-learn): only `flow review` loads it
    from cleanlab.rank import get_label_quality_scores

    probs = oof.probs / oof.probs.sum(axis=1, keepdims=True)  # oof.csv keeps six digits: rows sum to 1 again
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cleanlab warns of small classes; the table says what it found
            ranked = find_label_issues(oof.labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
            scores = get_label_quality_scores(oof.labels, probs, method="self_confidence")
    except (ValueError, AssertionError) as exc:
        raise FlowError(f"cleanlab cannot rank these out-of-fold predictions: {str(exc).strip().splitlines()[0]}") from None
    ranked = np.asarray(ranked, dtype=int)
    return pd.DataFrame({
        "id": oof.ids[ranked], "label": [names[i] for i in oof.labels[ranked]],
        "suggested": [names[i] for i in probs[ranked].argmax(axis=1)], "score": scores[ranked],
    })


def top_losses(oof: OutOfFold, names: list[str], top: int, answers: np.ndarray | None = None) -> pd.DataFrame:
    """id, label, predicted, probability (of the prediction), loss: the `top` highest losses (a
    multi-label run: the label and predicted sets, `answers` the decided ones; no one probability)."""
    target = _target_of(oof)
    loss = target.image_losses(oof.labels, oof.probs)
    order = np.argsort(-loss, kind="stable")[:top]
    if target.thresholded:
        multi, answers = TARGETS["multi"], oof.preds if answers is None else answers
        return pd.DataFrame({
            "id": oof.ids[order], "label": [multi.describe(multi.format(oof.labels[i]), names) for i in order],
            "predicted": [multi.describe(multi.format(answers[i]), names) for i in order], "probability": np.nan, "loss": loss[order],
        })
    return pd.DataFrame({
        "id": oof.ids[order], "label": [names[i] for i in oof.labels[order]], "predicted": [names[i] for i in oof.preds[order]],
        "probability": oof.probs[order, oof.preds[order]], "loss": loss[order],
    })


def review_run(ws: Workspace, name: str | None, *, top: int = 16) -> Review:
    """Read the run's oof.csv, rank its losses, confusions and label issues; write the review folder."""
    run, scope = reviewed_run(ws, name)
    names = ws.class_names()
    target = TARGETS[run.config.target]
    oof = read_oof(run.oof, run.config.num_classes, target)
    answers = apply(oof.probs, read_thresholds(run.path, run.config.num_classes)) if target.thresholded else oof.preds
    issues = label_issues(oof, names, answers)
    losses = top_losses(oof, names, top, answers)
    pairs = confused_pairs(oof, names) if not target.thresholded else pd.DataFrame(columns=["label", "predicted", "true_index", "pred_index", "count"])
    folder = run.path / REVIEW
    files = [write_csv(folder / ISSUES_CSV, issues, float_format="%.6g")]
    table = ws.table(quiet=True)
    paths = dict(zip(table["id"], table["path"].astype(str)))
    draw = _Drawer(paths, ws.comp.channels)
    how = (" (the sets at the run's thresholds), loss = binary cross entropy averaged over the classes" if target.thresholded
           else " (its probability), loss = -ln p(label)")
    files.append(draw(rows_of([_tile(paths, r.id, f"{r.id}\n{r.label} -> {r.predicted}"
                                     + ("" if np.isnan(r.probability) else f" ({r.probability:.2f})") + f", loss {r.loss:.2f}")
                               for r in losses.itertuples()], 4), folder / "top_losses.png",
                      f"{run.id}: top losses, highest first\nid; label -> predicted{how}"))
    if not pairs.empty:
        files.append(draw(_pair_grid(oof, pairs, paths), folder / "confused.png",
                          f"{run.id}: most confused classes, a row per pair, most frequent first\n"
                          "id; label -> predicted (its probability); N times: how often the pair occurs"))
    if not issues.empty:
        shown = issues.head(top)
        files.append(draw(rows_of([_tile(paths, r.id, f"{r.id}\n{r.label}, maybe {r.suggested} (score {r.score:.3f})")
                                   for r in shown.itertuples()], 4), folder / "label_issues.png",
                          f"{run.id}: likely label errors, likeliest first\nid; label, maybe the suggested class "
                          "(score: cleanlab's label quality, lower = likelier wrong)"))
    return Review(run, scope, issues, losses, pairs.drop(columns=["true_index", "pred_index"]), len(oof), files, draw.unreadable)


class _Drawer:
    """Draws the galleries, gathering the images none could read."""

    def __init__(self, paths: dict[str, str], channels: int) -> None:
        self.paths, self.channels, self.unreadable = paths, channels, {}

    def __call__(self, grid: list[list[Tile]], path: Path, title: str) -> Path:
        written, skipped = gallery(grid, path, channels=self.channels, title=title)
        self.unreadable.update(skipped)
        return written


def _tile(paths: dict[str, str], image_id: str, title: str) -> Tile:
    return Tile(paths.get(image_id), image_id, title)


def _pair_grid(oof: OutOfFold, pairs: pd.DataFrame, paths: dict[str, str]) -> list[list[Tile]]:
    """One row per confused pair: its most confident mistakes."""
    grid = []
    for p in pairs.itertuples():
        hit = np.flatnonzero((oof.labels == p.true_index) & (oof.preds == p.pred_index))
        hit = hit[np.argsort(-oof.probs[hit, p.pred_index], kind="stable")][:PER_PAIR]
        grid.append([_tile(paths, oof.ids[i], f"{oof.ids[i]}\n{p.label} -> {p.predicted} ({oof.probs[i, p.pred_index]:.2f})"
                           + (f", {p.count} times" if k == 0 else "")) for k, i in enumerate(hit)])
    return grid


def exclude_issues(ws: Workspace, review: Review) -> Exclusion:
    """`flow review --exclude`: every label issue found, listed for later training to leave out."""
    return write_exclusion(ws.runs_dir, review.issues["id"], f"the label issues of `flow review --run {review.run.id}`")


def exclude_listed(ws: Workspace, file: Path) -> Exclusion:
    """`flow review --exclude FILE`: the ids of a CSV with an `id` column, each a labelled row of the table."""
    ids = read_csv(file, ["id"])["id"].str.strip()
    known = set(labelled(ws.table(quiet=True))["id"])
    for line, value in enumerate(ids, start=2):
        if value not in known:
            raise DataError(f"{file} line {line}: id '{value}' is no labelled image of '{ws.comp.name}'")
    return write_exclusion(ws.runs_dir, ids, f"the ids of {file}")
