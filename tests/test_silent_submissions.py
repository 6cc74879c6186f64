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

from kaggle_flow.competition import load_file

# --- a sample column that holds no prediction (Usage, a row number) -----------------------------


def _extra_column(sample: Path, column: str, position: int) -> list[str]:
    frame = pd.read_csv(sample, dtype=str)
    values = ["Public", "Private"] * (len(frame) // 2) + ["Public"] * (len(frame) % 2)
    if column != "Usage":  # the row number
        values = [str(i + 1) for i in range(len(frame))]
    frame.insert(position, column, values)
    frame.to_csv(sample, index=False)
    return values


@pytest.mark.parametrize(("column", "position"), [("Usage", 2), ("row", 1)])
def test_a_sample_column_without_predictions_is_copied_not_predicted(
    workdir: Path, tmp_path: Path, column: str, position: int
) -> None:
    tree = make("aerial_cactus", tmp_path / "downloads")
    copied = _extra_column(tree / "sample_submission.csv", column, position)
    result = flow("init", "cactus", "--from", tree, "--metric", "auc")
    assert result.exit_code == 0, result.output
    assert f"'{column}' copied from the sample as it is" in result.output
    sub = load_file(workdir / "competitions/cactus.toml").submission
    assert (sub.kind, sub.label_column, sub.copied) == ("probability", "has_cactus", [column])

    assert flow("import", "cactus", tree).exit_code == 0
    np.save(workdir / "probs.npy", np.tile(np.float32([0.2, 0.8]), (12, 1)))  # P(cactus) = 0.8 everywhere
    result = flow("submit", "cactus", "--probs", "probs.npy")
    assert result.exit_code == 0, result.output
    (file,) = (p for p in (workdir / "submissions/cactus").glob("*.csv") if p.name != "ledger.csv")
    written = pd.read_csv(file, dtype=str)
    sample = pd.read_csv(tree / "sample_submission.csv", dtype=str)
    assert list(written.columns) == list(sample.columns)
    assert written[column].tolist() == copied and written["id"].tolist() == sample["id"].tolist()
    assert set(written["has_cactus"].astype(float)) == {0.8}

    (workdir / "data/cactus/sample_submission.csv").unlink()  # nothing to copy from: said, not left out
    assert one_line_error(flow("submit", "cactus", "--probs", "probs.npy")) == (
        f"Error: submission.copied: the sample sample_submission.csv is missing, and {column} is copied from it"
    )


def test_a_sample_whose_every_value_column_holds_no_prediction_is_one_line(workdir: Path, tmp_path: Path) -> None:
    tree = make("aerial_cactus", tmp_path / "downloads")
    sample = pd.read_csv(tree / "sample_submission.csv", dtype=str)
    sample["has_cactus"], sample["Usage"] = "tbd", "Public"
    sample.to_csv(tree / "sample_submission.csv", index=False)
    line = one_line_error(flow("init", "cactus", "--from", tree, "--metric", "auc"))
    assert line.startswith(f"Error: {(tree / 'sample_submission.csv').relative_to(workdir)}: none of its value columns holds a prediction (has_cactus: ")
    assert "; Usage: " in line and not (workdir / "competitions").exists()


def test_a_sample_with_more_value_columns_than_classes_names_them(workdir: Path, tmp_path: Path) -> None:
    tree = make("aerial_cactus", tmp_path / "downloads")
    sample = pd.read_csv(tree / "sample_submission.csv", dtype=str)
    sample["other"] = sample["third"] = "0.5"
    sample.to_csv(tree / "sample_submission.csv", index=False)
    assert one_line_error(flow("init", "cactus", "--from", tree, "--metric", "auc")) == (
        f"Error: {(tree / 'sample_submission.csv').relative_to(workdir)}: 3 value columns (has_cactus, other, third) "
        "for 2 classes (0, 1); one value column, or one per class"
    )
    assert not (workdir / "competitions").exists()


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
