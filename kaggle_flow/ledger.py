"""The submission ledger: submissions/COMP/ledger.csv, one row per submission file.

A row says which run and recipe made a file, its cross-validation score (the run's best validation
score) and, once `flow score` has run, its local score on the known test labels. Every change
reads the file, edits the frame and writes it back through a temp file and a rename, so the ledger
is never half written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from kaggle_flow.fileio import read_csv, write_csv

LEDGER = "ledger.csv"
COLUMNS = ["time", "file", "run", "model", "epochs", "lr", "batch_size", "preset", "tta", "cv_score", "local_score"]
RECIPE_KEYS = ("model", "epochs", "lr", "batch_size", "preset")


def ledger_file(submissions_dir: Path) -> Path:
    return Path(submissions_dir) / LEDGER


def read_ledger(submissions_dir: Path) -> pd.DataFrame:
    """The ledger (empty, with its columns, when there is none yet)."""
    file = ledger_file(submissions_dir)
    if not file.is_file():
        return pd.DataFrame({c: pd.Series(dtype=str) for c in COLUMNS})
    frame = read_csv(file)
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    return frame


def recipe_summary(config: dict[str, Any]) -> dict[str, str]:
    """Model, epochs, lr, batch size and preset from a run's resolved config (top level or `recipe`)."""
    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
    out: dict[str, str] = {}
    for key in RECIPE_KEYS:
        value = config.get(key, recipe.get(key, ""))
        out[key] = "" if value is None else str(value)
    return out


def _fmt(score: float | None) -> str:
    return "" if score is None else f"{float(score):.6f}"


def add_entry(
    submissions_dir: Path,
    *,
    file: Path,
    run: str,
    config: dict[str, Any] | None = None,
    cv_score: float | None = None,
    tta: bool = False,
    when: float | None = None,
) -> pd.DataFrame:
    """Append one submission's row and return the new ledger.

    Example:
        >>> add_entry(ws.submissions_dir, file=path, run="r1", config=load_config(run_dir), cv_score=0.97)
    """
    frame = read_ledger(submissions_dir)
    row = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when if when is not None else time.time())),
        "file": Path(file).name,
        "run": run,
        **recipe_summary(config or {}),
        "tta": "yes" if tta else "no",
        "cv_score": _fmt(cv_score),
        "local_score": "",
    }
    frame = pd.concat([frame, pd.DataFrame([row])], ignore_index=True)
    write_csv(ledger_file(submissions_dir), frame)
    return frame


def set_local_score(submissions_dir: Path, file: Path, score: float) -> bool:
    """Fill the local score of `file`'s row; False when the file is not in the ledger."""
    frame = read_ledger(submissions_dir)
    hit = frame["file"] == Path(file).name
    if not hit.any():
        return False
    frame.loc[hit, "local_score"] = _fmt(score)
    write_csv(ledger_file(submissions_dir), frame)
    return True
