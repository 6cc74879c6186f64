"""Broken images end to end: left out of training, yet every test id still gets a submission row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from clitools import flow, one_line_error
from trees import lemon_tree


def test_broken_images_are_left_out_but_the_submission_is_complete(workdir: Path) -> None:
    root = lemon_tree(workdir / "data" / "lemon", per_class=6, n_test=5)
    (root / "train_images" / "train_1_002.jpg").write_bytes(b"")
    (root / "test_images" / "test_0002.jpg").write_bytes(b"not a jpeg")
    assert flow("eda", "lemon").exit_code == 0
    assert flow("split", "--val-size", "0.2").exit_code == 0
    folds = pd.read_csv(workdir / "runs/lemon/folds.csv")
    assert "train_1_002.jpg" not in set(folds["id"])

    assert flow("train", "--model", "smallcnn", "--sizes", "16", "--epochs", "1").exit_code == 0
    result = flow("submit")
    assert result.exit_code == 0, result.output
    assert (
        "Warning: 1 broken test image keeps its row, predicted as the average of the others: test_0002.jpg"
        in result.output
    )
    (file,) = [p for p in (workdir / "submissions/lemon").glob("*.csv") if p.name != "ledger.csv"]
    submission = pd.read_csv(file)
    assert list(submission["id"]) == [f"test_{i:04d}.jpg" for i in reversed(range(5))]  # sample_submit order
    assert submission["class_num"].between(0, 3).all()

    assert one_line_error(flow("submit", "lemon", "--strict")).startswith("Error: runs/lemon/eda/broken.csv: 2 broken images: ")
