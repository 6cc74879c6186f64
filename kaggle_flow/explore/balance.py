"""Label shuffling, as the lemon course teaches it: every class padded to the largest one.

`flow balance` shows what it does to a fold's training rows and records in runs/COMP/balance.json
that later training of the competition shuffles labels (training redraws the list every epoch);
`flow balance --off` records the opposite. No paddle here: the CLI imports this module directly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kaggle_flow.errors import DataError
from kaggle_flow.explore.split import DEFAULT_SEED, ensure_folds, train_val
from kaggle_flow.fileio import write_json

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

SETTING = "label_shuffling"  # the key of balance.json


def label_shuffle(train: pd.DataFrame, *, seed: int = 42) -> pd.DataFrame:
    """Return a row list in which every class appears as often as the largest class.

    1. sort by label; N = size of the largest class;
    2. for each class, draw a random permutation of range(N) and take each index modulo the class
       size to pick its rows (every image is used, the small classes repeat);
    3. concatenate the classes and shuffle the whole list.

    `train` must hold only training rows: validation rows never enter.
    """
    rng = np.random.default_rng(seed)
    ordered = train.sort_values("label", kind="stable").reset_index(drop=True)
    groups = [g for _, g in ordered.groupby("label", sort=True)]
    if not groups:
        return ordered.iloc[0:0]
    largest = max(len(g) for g in groups)
    picked = [g.iloc[rng.permutation(largest) % len(g)] for g in groups]
    balanced = pd.concat(picked, ignore_index=True)
    return balanced.iloc[rng.permutation(len(balanced))].reset_index(drop=True)


def balance_counts(train: pd.DataFrame, class_names: Sequence[str], *, seed: int = 42) -> pd.DataFrame:
    """class, before, after: images per class in `train` and in its label-shuffled list."""
    after = label_shuffle(train, seed=seed)
    classes = range(len(class_names))
    return pd.DataFrame(
        {
            "class": list(class_names),
            "before": train["label"].value_counts().reindex(classes, fill_value=0).astype(int).to_numpy(),
            "after": after["label"].value_counts().reindex(classes, fill_value=0).astype(int).to_numpy(),
        }
    )


def balance_setting(ws: Workspace) -> bool | None:
    """Whether `flow balance` turned label shuffling on (True) or off (False); None: never set."""
    file = ws.balance_file()
    if not file.is_file():
        return None
    try:
        value = json.loads(file.read_text(encoding="utf-8")).get(SETTING)
    except (OSError, ValueError, AttributeError):
        value = None
    if not isinstance(value, bool):
        raise DataError(f"{file}: not a balance setting; run flow balance {ws.comp.name} (or --off) to rewrite it")
    return value


def set_balance(ws: Workspace, on: bool) -> Path:
    """Record label shuffling on or off for the competition's later training; the file written."""
    return write_json(ws.balance_file(), {SETTING: on})


def turn_on(ws: Workspace, *, fold: int = 0, seed: int | None = None, strict: bool = False) -> pd.DataFrame:
    """`flow balance`: the before/after class counts of the fold's training rows, then record the
    setting on (only once the counts could be made: a missing fold or stale folds change nothing).

    Without folds.csv the default folds are made first, as training would.
    """
    table = ws.table(strict=strict)
    train, _ = train_val(table, ensure_folds(ws, table), fold)
    counts = balance_counts(train, ws.class_names(), seed=DEFAULT_SEED if seed is None else seed)
    set_balance(ws, True)
    return counts
