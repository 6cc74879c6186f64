"""The rows of `flow runs`: one per run folder of runs/COMP, what it is and where it stands.

A training run shows its recipe and its RunState (run_state.py): how it ended, or that it can be
resumed, or that it stopped before its first checkpoint; an ensemble shows its members; a folder
whose config.json cannot be read is a row too, marked damaged with the reason, so that no run
vanishes from the list.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kaggle_flow.run_state import read_summary, state_of
from kaggle_flow.runs import DamagedRun, Ensemble, Run, creation_order, scan_runs

if TYPE_CHECKING:
    from kaggle_flow.config import RunConfig

def list_runs(runs_dir: Path) -> pd.DataFrame:
    """One row per run folder of runs/COMP (cross-validation runs as one row, damaged folders too), oldest first.

    Columns: run, path, kind, model, recipe, fold, metric, best_score, best_epoch, epochs, duration_s, status
    (a Summary status, or resumable, no checkpoint, damaged: see run_state.py), procs (the processes it
    trained in, data parallel; 0 for an ensemble), note (what to do about its status, or '').
    """
    runs, damaged = scan_runs(runs_dir)
    folders = sorted([*runs, *damaged], key=creation_order)
    rows = [run_row(r) if isinstance(r, Run) else ensemble_row(r) if isinstance(r, Ensemble) else damaged_row(r) for r in folders]
    return pd.DataFrame(rows, columns=COLUMNS)


COLUMNS = ["run", "path", "kind", "model", "recipe", "fold", "metric", "best_score", "best_epoch", "epochs", "duration_s",
           "status", "procs", "note"]


def recipe_text(config: RunConfig) -> str:
    """A short description of a training recipe, e.g. `adam 3e-03 cosine ls0.1 affine bs64x2`
    (the peak learning rate; the batch per process, times the processes)."""
    parts = [config.optimizer, f"{config.peak_lr:.0e}", config.schedule]
    if config.label_smoothing:
        parts.append(f"ls{config.label_smoothing:g}")
    parts.append(config.preset)
    for key in ("mixup", "cutmix", "ema"):
        if getattr(config, key):
            parts.append(f"{key}{getattr(config, key):g}")
    if config.balance:
        parts.append("balance")
    if config.sizes:
        parts.append("sizes " + ",".join(str(s) for s in config.sizes))
    parts.append(f"bs{config.batch_size}" + (f"x{config.world_size}" if config.world_size > 1 else ""))  # per process x processes
    if config.sync_bn:
        parts.append("sync-bn")
    if config.amp != "off":
        parts.append(f"amp-{config.amp}")
    return " ".join(parts)


def run_row(run: Run) -> dict[str, Any]:
    summary, config, state = run.summary, run.config, state_of(run)
    fold = f"all ({len(run.folds())})" if run.kind == "cv" else "full" if run.kind == "full" else str(config.fold)
    return {
        "run": run.name, "path": str(run.path), "kind": run.kind, "model": config.model, "recipe": recipe_text(config),
        "fold": fold, "metric": summary.metric or config.metric, "best_score": state.best_score,
        "best_epoch": summary.best_epoch, "epochs": f"{state.epochs_done}/{config.epochs}", "duration_s": summary.duration_s,
        "status": state.status, "procs": config.world_size, "note": state.note,
    }


def ensemble_row(ensemble: Ensemble) -> dict[str, Any]:
    """An ensemble trains nothing: no epochs or processes of its own; a blend (`flow blend`) has its
    members' weights and the CV score of its blended out-of-fold predictions."""
    config, summary = ensemble.config, read_summary(ensemble.summary_file)[0]
    what = "blend" if config.weights is not None else "ensemble"
    return {"run": ensemble.name, "path": str(ensemble.path), "kind": ensemble.kind, "model": "ensemble",
            "recipe": f"{what} of {len(config.members)}" + (" (ranks)" if config.rank else ""), "fold": "-",
            "metric": summary.metric, "best_score": summary.best_score, "best_epoch": 0, "epochs": "", "duration_s": 0.0,
            "status": "ensemble", "procs": 0, "note": ""}


def damaged_row(damaged: DamagedRun) -> dict[str, Any]:
    """A folder with a config.json that cannot be read: nothing is known of it but its name and why."""
    return {"run": damaged.name, "path": str(damaged.path), "kind": "", "model": "?", "recipe": "", "fold": "",
            "metric": "", "best_score": None, "best_epoch": 0, "epochs": "", "duration_s": None, "status": "damaged",
            "procs": 0, "note": f"{damaged.name}: damaged: {damaged.reason}; it is never picked: repair or remove it"}
