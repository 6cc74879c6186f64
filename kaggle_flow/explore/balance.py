"""Label shuffling, as the lemon course teaches it: every class padded to the largest one.

`flow balance` shows what it does to a fold's training rows and records in runs/COMP/balance.json
that later training of the competition shuffles labels (training redraws the list every epoch);
`flow balance --off` records the opposite. No paddle here: the CLI imports this module directly.

Multi-label: each image is padded under its rarest label (the label of the fewest images among its
own); an image with no label is kept once. A class that always comes with a common one still grows
with it, so the counts after are closer, not equal: the table shows each class's images, counted in
every class of the image.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kaggle_flow.errors import DataError
from kaggle_flow.explore.split import DEFAULT_SEED, STRATIFY, encoded_labels, ensure_folds, target_of, train_val
from kaggle_flow.fileio import write_json

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

SETTING = "label_shuffling"  # the key of balance.json


def label_shuffle(train: pd.DataFrame, *, seed: int = 42) -> pd.DataFrame:
    """Return a row list in which every class appears as often as the largest class.

    1. sort by label (multi-label: each image's rarest label); N = size of the largest class;
    2. for each class, draw a random permutation of range(N) and take each index modulo the class
       size to pick its rows (every image is used, the small classes repeat);
    3. concatenate the classes and shuffle the whole list.

    `train` must hold only training rows: validation rows never enter.
    """
    rng = np.random.default_rng(seed)
    key = STRATIFY[target_of(train).name].one_class(encoded_labels(train, None)[0])
    ordered = train.assign(_class=key).sort_values("_class", kind="stable").reset_index(drop=True)
    groups = [g.drop(columns="_class") for c, g in ordered.groupby("_class", sort=True) if c >= 0]
    if not groups:
        return ordered.drop(columns="_class").iloc[0:0]
    largest = max(len(g) for g in groups)
    unlabelled = ordered[ordered["_class"] < 0].drop(columns="_class")  # an image with no label: kept once
    picked = [g.iloc[rng.permutation(largest) % len(g)] for g in groups] + ([unlabelled] if len(unlabelled) else [])
    balanced = pd.concat(picked, ignore_index=True)
    return balanced.iloc[rng.permutation(len(balanced))].reset_index(drop=True)


def balance_counts(train: pd.DataFrame, class_names: Sequence[str], *, seed: int = 42) -> pd.DataFrame:
    """class, before, after: images per class in `train` and in its label-shuffled list."""
    after = label_shuffle(train, seed=seed)
    return pd.DataFrame({"class": list(class_names), "before": _counts(train, class_names), "after": _counts(after, class_names)})


def _counts(rows: pd.DataFrame, class_names: Sequence[str]) -> np.ndarray:
    """Images per class (multi-label: an image counts in each of its classes)."""
    target = target_of(rows)
    return target.counts(target.encode(rows, len(class_names)), len(class_names)).astype(int)


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
