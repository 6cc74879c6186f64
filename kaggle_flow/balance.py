"""Label shuffling, as the lemon course teaches it: every class padded to the largest one."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
