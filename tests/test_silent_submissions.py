"""Inputs that used to give a wrong submission without a word: a sample column that holds no
prediction, one-hot labels with one bad row, saved probabilities that are no probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import flow, one_line_error
from kaggle_trees import make
from trees import lemon_tree

# --- one-hot label columns with one bad row -----------------------------------------------------


@pytest.mark.parametrize("bad", ["2", "", "0.5"])
def test_one_hot_labels_with_one_bad_row_name_it(workdir: Path, tmp_path: Path, bad: str) -> None:
    tree = make("plant_pathology", tmp_path / "downloads")
    (tree / "sample_submission.csv").unlink()
    train = pd.read_csv(tree / "train.csv", dtype=str)
    train.loc[7, "rust"] = bad
    train.to_csv(tree / "train.csv", index=False)
    assert one_line_error(flow("init", "plant", "--from", tree)) == (
        f"Error: {(tree / 'train.csv').relative_to(workdir)} line 9: column 'rust' holds '{bad}' (one-hot columns hold 0 or 1)"
    )
    assert not (workdir / "competitions").exists()


# --- saved probabilities that are no probabilities ----------------------------------------------


@pytest.mark.parametrize(
    ("row", "values", "line"),
    [
        (None, -1.0, "row 1 holds -1 for class 'excellent': a probability is 0 or more"),
        (3, [0.5, -0.25, 0.5, 0.25], "row 4 holds -0.25 for class 'good': a probability is 0 or more"),
        (2, [0, 0, 0, 0], "row 3 sums to 0: it cannot be scaled to sum to 1"),
    ],
)
def test_submit_refuses_saved_values_that_are_no_probabilities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row: int | None, values: object, line: str
) -> None:
    monkeypatch.chdir(tmp_path)
    data = lemon_tree(tmp_path / "raw")
    probs = np.full((5, 4), 0.25, np.float32)
    if row is None:
        probs[:] = values
    else:
        probs[row] = values
    np.save(tmp_path / "probs.npy", probs)
    assert one_line_error(flow("submit", "lemon", "--data", data, "--probs", "probs.npy")) == f"Error: probs.npy: {line}"
    assert not (tmp_path / "submissions").exists() or not any((tmp_path / "submissions").rglob("*.csv"))


def test_submit_refuses_a_saved_file_of_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = lemon_tree(tmp_path / "raw")
    np.save(tmp_path / "probs.npy", np.full((5, 4), "0.25"))
    assert one_line_error(flow("submit", "lemon", "--data", data, "--probs", "probs.npy")) == (
        "Error: probs.npy: holds <U4 values, not numbers"
    )
