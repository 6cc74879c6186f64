"""Run folders: runs/COMP/RUN-ID/, one per `flow train`, everything needed to resume or predict.

    config.json      the resolved config (recipe + flags + competition facts: classes, size, mean/std)
    metrics.csv      one row per epoch: epoch, size, lr, train/val loss and accuracy, val_metric, recall_*
    best.pdparams    the weights (EMA weights with --ema) of the epoch with the best val_metric
    last.pdparams    the weights after the last finished epoch, with last.pdopt (optimizer and LR
                     schedule) and last.pdstate (epoch, schedule, EMA, best so far, RNG): --resume
    summary.json     best_score, best_epoch, metric, epochs_done, duration_s, status
    curves.png       loss, metric and learning rate per epoch
    confusion.png    validation confusion matrix of the best model
    oof.csv          id, label, pred, prob_0..prob_{K-1} for the validation rows (best model)

A cross-validation run (`--folds all`) is a parent folder holding fold0/, fold1/... (each a full run
folder) plus config.json, oof.csv and summary.json (the CV score) of its own. RUN-ID is
`YYYYMMDD-HHMMSS-MODEL-fK` (`-cvK` for a cross-validation run), made unique with a suffix.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from kaggle_flow.errors import FlowError, NotFoundError

NOT_RUNS = {"eda", "cache"}


def new_run_dir(runs_dir: Path, model: str, tag: str) -> Path:
    """Create and return a fresh, unique runs/COMP/YYYYMMDD-HHMMSS-MODEL-TAG folder."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{model}-{tag}"
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = runs_dir / (stem if n == 1 else f"{stem}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FlowError(f"{runs_dir}: cannot find a free run name for {stem}")


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json; a one-line error when the folder is not a run."""
    file = Path(run_dir) / "config.json"
    if not file.is_file():
        raise NotFoundError(f"{run_dir}: not a run folder (no config.json)")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FlowError(f"{file}: not readable JSON: {exc}") from None
    if not isinstance(config, dict):
        raise FlowError(f"{file}: not a JSON object")
    return config


def load_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json of a run ({} while it has none, e.g. still training)."""
    return _read_json(Path(run_dir) / "summary.json")


def fold_dirs(run_dir: Path) -> list[Path]:
    """The fold sub-runs of a cross-validation run, in fold order ([] for a single run)."""
    found = [p for p in Path(run_dir).glob("fold*") if p.is_dir() and (p / "config.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0)


def has_weights(run_dir: Path) -> bool:
    """Whether a run can predict: best weights of its own, or of every fold."""
    run_dir = Path(run_dir)
    if (run_dir / "best.pdparams").is_file():
        return True
    folds = fold_dirs(run_dir)
    return bool(folds) and all((f / "best.pdparams").is_file() for f in folds)


def recipe_text(config: dict[str, Any]) -> str:
    """A short description of a training recipe, e.g. `adam 3e-03 cosine ls0.1 affine bs64`."""
    if config.get("kind") == "ensemble":
        return f"ensemble of {len(config.get('members', []))}"
    parts = [str(config.get("optimizer", "?")), f"{float(config.get('lr', 0)):.0e}", str(config.get("schedule", "?"))]
    if config.get("label_smoothing"):
        parts.append(f"ls{config['label_smoothing']}")
    parts.append(str(config.get("preset", "?")))
    for key in ("mixup", "cutmix", "ema"):
        if config.get(key):
            parts.append(f"{key}{config[key]}")
    if config.get("balance"):
        parts.append("balance")
    if config.get("sizes"):
        parts.append("sizes " + ",".join(str(s) for s in config["sizes"]))
    parts.append(f"bs{config.get('batch_size', '?')}")
    return " ".join(parts)


def _run_folders(runs_dir: Path) -> list[Path]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    folders = [p for p in runs_dir.iterdir() if p.is_dir() and p.name not in NOT_RUNS and (p / "config.json").is_file()]
    return sorted(folders, key=_creation_order)


def _creation_order(run_dir: Path) -> tuple[str, int, str]:
    """Oldest first: the time stamp in the name, then when config.json was written (same second)."""
    stamp = re.search(r"\d{8}-\d{6}", run_dir.name)
    return (stamp.group(0) if stamp else "", (run_dir / "config.json").stat().st_mtime_ns, run_dir.name)


def list_runs(runs_dir: Path) -> pd.DataFrame:
    """One row per run folder of runs/COMP (cross-validation runs as one row), oldest first.

    Columns: run, path, model, recipe, fold, metric, best_score, best_epoch, epochs, duration_s, status.
    """
    rows = []
    for run_dir in _run_folders(runs_dir):
        config, summary = _read_json(run_dir / "config.json"), load_summary(run_dir)
        folds = fold_dirs(run_dir)
        if config.get("kind") == "ensemble":
            fold = "-"
        elif folds:
            fold = f"all ({len(folds)})"
        else:
            fold = str(config.get("fold", "?"))
        status = summary.get("status", "ensemble" if config.get("kind") == "ensemble" else "no summary")
        rows.append(
            {
                "run": run_dir.name,
                "path": str(run_dir),
                "model": config.get("model", "ensemble" if config.get("kind") == "ensemble" else "?"),
                "recipe": recipe_text(config),
                "fold": fold,
                "metric": summary.get("metric", config.get("metric", "")),
                "best_score": summary.get("best_score"),
                "best_epoch": summary.get("best_epoch"),
                "epochs": f"{summary.get('epochs_done', 0)}/{config.get('epochs', '?')}" if "epochs" in config else "",
                "duration_s": summary.get("duration_s"),
                "status": status,
            }
        )
    columns = ["run", "path", "model", "recipe", "fold", "metric", "best_score", "best_epoch", "epochs", "duration_s", "status"]
    return pd.DataFrame(rows, columns=columns)


def resolve_run(ws: Any, run: str | None, best: bool = False) -> Path:
    """The folder of a run of the workspace's competition.

    Args:
        ws: the Workspace (its runs_dir is runs/COMP).
        run: a run id (`20261122-153012-smallcnn-f0`), a fold of a CV run (`RUN/fold1`), a path to a
            run folder, `best`, `last`, or None.
        best: with run None, the run with the highest best_score (else the newest run).

    Raises NotFoundError listing the runs when the name matches none.
    """
    runs_dir = Path(ws.runs_dir)
    folders = [p for p in _run_folders(runs_dir) if has_weights(p) or (p / "config.json").is_file()]
    if run is None or run in ("best", "last"):
        usable = [p for p in folders if has_weights(p)]
        if not usable:
            raise NotFoundError(f"{runs_dir}: no finished training run yet; train one with `flow train {ws.comp.name}`")
        if run == "last" or (run is None and not best):
            return usable[-1]
        scored = [(load_summary(p).get("best_score"), p) for p in usable]
        scored = [(float(s), p) for s, p in scored if s is not None]
        if not scored:
            return usable[-1]
        return max(scored, key=lambda sp: (sp[0], sp[1].name))[1]
    for candidate in (runs_dir / run, Path(run)):
        if (candidate / "config.json").is_file():
            return candidate
    known = ", ".join(p.name for p in folders[-10:]) or "none"
    raise NotFoundError(f"unknown run '{run}' in {runs_dir} (runs: {known})")
