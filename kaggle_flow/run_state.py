"""How a run went and where it stands, read from its files alone.

    summary.json         how it ended: finished, stopped early, interrupted, failed (Summary)
    no summary.json      still training, or killed: resumable when a last checkpoint (last.pdstate)
                         exists, else stopped before its first epoch ended (nothing to resume)
    damaged              a summary.json that cannot be read, or a finished run without its best
                         weights: listed by `flow runs` with the reason, never picked to predict

`flow runs` shows a RunState per run; choosing a run to predict (runs.resolve_run) refuses to go
past a damaged one.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kaggle_flow.metrics import METRICS, Metric

if TYPE_CHECKING:
    from kaggle_flow.runs import Run

FINISHED = ("finished", "stopped early")  # statuses of a run whose best model can be used
FAILED = "failed"  # the loss stopped being finite: its weights are never used
INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM after a checkpoint: resumable
NO_SUMMARY = "no summary"
CHECKPOINT = "last.pdstate"  # the file of a last checkpoint that `--resume` needs (with last.pdparams, last.pdopt)


class Summary(BaseModel):
    """summary.json: how a run went. Read leniently: a run still training has none yet."""

    model_config = ConfigDict(extra="ignore")

    status: str = NO_SUMMARY  # finished, stopped early, interrupted, failed
    reason: str = ""  # why it failed
    metric: str = ""
    best_score: float | None = None
    best_epoch: int = 0
    best_loss: float | None = None  # the best epoch's validation loss (a tie of scores goes to the lower)
    best_reason: str = ""  # why that epoch: "epoch 47: auc 1.0000 tied from epoch 2, lowest val loss 0.0450"
    epochs_done: int = 0
    epochs: int = 0
    duration_s: float = 0.0
    images_per_s: float | None = None
    timing: list[dict[str, Any]] = Field(default_factory=list)  # per epoch: epoch, seconds, images_per_s
    params: int | None = None
    cv_score: float | None = None  # cross-validation runs: the out-of-fold score
    fold_scores: list[float | None] = Field(default_factory=list)


def read_summary(file: Path) -> tuple[Summary, str | None]:
    """The summary (an empty one when there is none), and why the file is damaged (None when it is not)."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Summary(), None
    except OSError as exc:
        return Summary(), f"{file}: not readable ({exc.strerror})"
    try:
        return Summary.model_validate(json.loads(text)), None
    except (ValueError, ValidationError) as exc:
        return Summary(), f"{file}: not a readable summary ({str(exc).strip().splitlines()[0]})"


@dataclass(frozen=True)
class RunState:
    """What `flow runs` says of a run: its status word, epochs and best score so far, and the line to act on."""

    status: str  # a Summary status, or resumable, no checkpoint, damaged
    epochs_done: int
    best_score: float | None
    note: str = ""  # what to do about it ('' when nothing): shown under the table
    damaged: str | None = None  # why the run cannot be used to predict, for a damaged run


def state_of(run: Run) -> RunState:
    """Where a training run stands; see the module docstring."""
    summary, damage = read_summary(run.summary_file)
    resume = f"flow train {run.config.competition} --resume {run.id}"
    if damage is not None:
        return RunState("damaged", 0, None, f"{run.id}: damaged: {damage}", damaged=damage)
    if summary.status in FINISHED and run.kind != "cv" and not run.best.is_file():
        why = f"{run.best}: missing, although the run finished; train it again"
        return RunState("damaged", summary.epochs_done, summary.best_score, f"{run.id}: damaged: {why}", damaged=why)
    if summary.status == INTERRUPTED:  # resumed since, and killed again: metrics.csv has gone further
        done = max(summary.epochs_done, _metrics_so_far(run.metrics_file, METRICS[run.config.metric])[0])
        return RunState(INTERRUPTED, done, summary.best_score, f"{run.id}: interrupted; resume: {resume}")
    if summary.status != NO_SUMMARY:
        return RunState(summary.status, summary.epochs_done, summary.best_score)
    if any(run.path.rglob(CHECKPOINT)):
        done, best = _metrics_so_far(run.metrics_file, METRICS[run.config.metric])
        where = "" if run.kind == "cv" else f" after epoch {done} of {run.config.epochs}"
        note = f"{run.id}: stopped{where} without a summary (killed, or still training); resume: {resume}"
        return RunState("resumable", done, best, note)
    note = (f"{run.id}: stopped before its first epoch ended (or is still in it); nothing to resume: "
            f"remove it, or train anew: flow train {run.config.competition}")
    return RunState("no checkpoint", 0, None, note)


def _metrics_so_far(file: Path, metric: Metric) -> tuple[int, float | None]:
    """Epochs in metrics.csv and their best val_metric: what a run without a summary reached."""
    try:
        with file.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return 0, None
    scores = []
    for row in rows:
        try:
            scores.append(float(row.get("val_metric") or "nan"))
        except ValueError:
            continue
    scores = [s for s in scores if math.isfinite(s)]
    return len(rows), max(scores, key=metric.key) if scores else None
