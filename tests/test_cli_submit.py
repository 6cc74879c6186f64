"""`flow submit`, `flow score`, `flow submissions`, `flow predict` through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import fake_run, flow, one_line_error
from trees import lemon_tree, palm_tree, zodiac_tree


def fake_probs(path: Path, n: int, k: int, seed: int = 0) -> Path:
    probs = np.random.default_rng(seed).random((n, k)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, probs / probs.sum(axis=1, keepdims=True))
    return path


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "tree", "n_test", "columns"),
    [
        ("lemon", lemon_tree, 5, ["id", "class_num"]),
        ("zodiac", zodiac_tree, 5, ["id", "label"]),
        ("palm", palm_tree, 4, ["FileName", "PM Risk"]),
    ],
)
def test_submit_saved_probs_in_each_format(cwd: Path, name: str, tree, n_test: int, columns: list[str]) -> None:
    data = tree(cwd / "raw" / name)
    k = {"lemon": 4, "zodiac": 12, "palm": 2}[name]
    probs = fake_probs(cwd / "runs" / name / "r1" / "test_probs.npy", n_test, k)
    result = flow("submit", name, "--data", data, "--probs", probs)
    assert result.exit_code == 0, result.output
    files = sorted((cwd / "submissions" / name).glob("*_r1.csv"))
    assert len(files) == 1
    assert f"Wrote submissions/{name}/{files[0].name} ({n_test} rows" in result.output
    assert "predicted share" in result.output and "train share" in result.output
    frame = pd.read_csv(files[0], dtype=str)
    assert list(frame.columns) == columns
    if name == "lemon":
        assert frame["id"].tolist() == [f"test_{i:04d}.jpg" for i in reversed(range(5))]
    ledger = pd.read_csv(cwd / "submissions" / name / "ledger.csv", dtype=str, keep_default_na=False)
    assert ledger["file"].tolist() == [files[0].name] and ledger["run"].tolist() == ["r1"]


def test_submit_probs_that_do_not_match(cwd: Path) -> None:
    data = lemon_tree(cwd / "raw")
    probs = fake_probs(cwd / "p" / "test_probs.npy", 3, 4)
    assert one_line_error(flow("submit", "lemon", "--data", data, "--probs", probs)) == (
        "Error: p/test_probs.npy: probabilities for 3 images, but the test set has 5"
    )
    assert not (cwd / "submissions").exists() or not any((cwd / "submissions").rglob("*.csv"))


def test_submit_sample_with_unexpected_column(cwd: Path) -> None:
    data = lemon_tree(cwd / "raw")
    (data / "sample_submit.csv").write_text("id,class_num,extra\ntest_0000.jpg,0,1\n")
    probs = fake_probs(cwd / "p" / "test_probs.npy", 5, 4)
    assert one_line_error(flow("submit", "lemon", "--data", data, "--probs", probs)) == (
        "Error: raw/sample_submit.csv: unexpected column 'extra' (the submission has id, class_num)"
    )


def test_submit_without_test_images(cwd: Path) -> None:
    data = lemon_tree(cwd / "raw", n_test=0)
    probs = fake_probs(cwd / "p" / "test_probs.npy", 5, 4)
    assert one_line_error(flow("submit", "lemon", "--data", data, "--probs", probs)) == (
        "Error: raw/test_images: no test images for 'lemon'"
    )
    assert one_line_error(flow("predict", "lemon", "--data", data)) == "Error: raw/test_images: no test images for 'lemon'"


def test_score_and_submissions(workdir: Path) -> None:
    solution = pd.read_csv(workdir / "data/digits/solution.csv")
    probs = np.eye(10, dtype=np.float32)[solution["label"].to_numpy()]
    probs[:30] = np.roll(probs[:30], 1, axis=1)  # 30 wrong answers
    np.save(workdir / "probs.npy", probs)
    # the test table is in file-name order, the solution too
    result = flow("submit", "digits", "--probs", "probs.npy")
    assert result.exit_code == 0, result.output
    result = flow("score")
    assert result.exit_code == 0, result.output
    (file,) = (workdir / "submissions/digits").glob(f"*_{workdir.name}.csv")
    assert not (workdir / "test_probs.npy").exists()  # saved probabilities are not copied
    want = (len(solution) - 30) / len(solution)
    assert f"Local accuracy of submissions/digits/{file.name}: {want:.4f}" in result.output
    ledger = pd.read_csv(workdir / "submissions/digits/ledger.csv", dtype=str, keep_default_na=False)
    assert float(ledger["local_score"].iloc[0]) == pytest.approx(want, abs=1e-6)

    result = flow("score", f"submissions/digits/{file.name}")  # a file alone: the current competition
    assert result.exit_code == 0, result.output
    assert f"{want:.4f}" in result.output

    result = flow("submissions")
    assert result.exit_code == 0, result.output
    assert "local" in result.output and f"{want:.4f}" in result.output


def test_score_without_local_labels(cwd: Path) -> None:
    data = lemon_tree(cwd / "raw")
    assert one_line_error(flow("score", "lemon", "--data", data)) == (
        "Error: no local labels for 'lemon' (raw/solution.csv not found): score it on the competition site"
    )


def test_score_before_any_submission(workdir: Path) -> None:
    assert one_line_error(flow("score", "digits")) == (
        "Error: submissions/digits: no submissions yet; run `flow submit` first"
    )


def test_submissions_empty(workdir: Path) -> None:
    result = flow("submissions", "digits")
    assert result.exit_code == 0, result.output
    assert "No submissions yet for 'digits'" in result.output


def test_predict_with_a_run_of_another_competition(workdir: Path) -> None:
    fake_run(workdir / "runs/mnist", "m1", comp="mnist")
    assert one_line_error(flow("predict", "digits", "--run", "runs/mnist/m1")) == (
        "Error: runs/mnist/m1: a run of 'mnist', not of 'digits'"
    )
    assert one_line_error(flow("submit", "digits", "--run", "runs/mnist/m1")) == (
        "Error: runs/mnist/m1: a run of 'mnist', not of 'digits'"
    )


def test_predict_with_a_run_of_another_class_count(workdir: Path) -> None:
    fake_run(workdir / "runs/digits", "r3", classes=3)
    assert one_line_error(flow("predict", "digits", "--run", "r3")) == (
        "Error: runs/digits/r3: trained for 3 classes, 'digits' has 10"
    )
    fake_run(workdir / "runs/digits", "r10")
    assert one_line_error(flow("predict", "digits", "--ensemble", "r10,r3")) == (
        "Error: runs/digits/r3: trained for 3 classes, 'digits' has 10"
    )
    assert not list((workdir / "runs/digits").glob("ensemble-*"))


def test_predict_without_runs(workdir: Path) -> None:
    assert one_line_error(flow("predict", "digits")) == (
        "Error: runs/digits: no finished training run yet; train one with `flow train digits`"
    )
    assert one_line_error(flow("predict", "digits", "--folds", "all")) == (
        "Error: runs/digits: no cross-validation run; train one with `flow train digits --folds all`"
    )


def test_predict_tta_ensemble_and_submit_fake_runs(workdir: Path) -> None:
    from kaggle_flow.predict import predict_probs
    from kaggle_flow.workspace import open_workspace

    a = fake_run(workdir / "runs/digits", "a", seed=1, score=0.4)
    b = fake_run(workdir / "runs/digits", "b", seed=2, score=0.6)
    table = open_workspace("digits").table()
    test = table[table["split"] == "test"].reset_index(drop=True)

    result = flow("predict", "digits", "--run", "a", "--tta")
    assert result.exit_code == 0, result.output
    assert "Saved the test probabilities (297 x 10) to runs/digits/a/test_probs.npy" in result.output
    tta = np.load(a / "test_probs.npy")
    np.testing.assert_allclose(tta, predict_probs(a, test, tta=True), atol=1e-6)
    assert not np.allclose(tta, predict_probs(a, test))

    result = flow("predict", "--ensemble", "a,b")
    assert result.exit_code == 0, result.output
    (ens,) = (workdir / "runs/digits").glob("ensemble-*")
    mean = (predict_probs(a, test) + predict_probs(b, test)) / 2
    np.testing.assert_allclose(np.load(ens / "test_probs.npy"), mean, atol=1e-6)
    import json

    assert json.loads((ens / "config.json").read_text())["members"] == ["a", "b"]

    result = flow("submit")  # the best run by validation score: b
    assert result.exit_code == 0, result.output
    assert "training set vs. predicted (b)" in result.output
    result = flow("submit", "--run", ens.name)
    assert result.exit_code == 0, result.output
    (sub,) = (workdir / "submissions/digits").glob(f"*_{ens.name}.csv")
    assert pd.read_csv(sub)["label"].tolist() == mean.argmax(axis=1).tolist()
    ledger = pd.read_csv(workdir / "submissions/digits/ledger.csv", dtype=str, keep_default_na=False)
    assert ledger["run"].tolist() == ["b", ens.name] and ledger["cv_score"].tolist() == ["0.600000", ""]


def test_predict_folds_all_averages_the_folds(workdir: Path) -> None:
    import json

    from kaggle_flow.predict import predict_probs
    from kaggle_flow.workspace import open_workspace

    fake_run(workdir / "runs/digits", "single", score=0.99)
    parent = workdir / "runs/digits/cv"
    folds = [fake_run(parent, f"fold{k}", seed=10 + k) for k in range(2)]
    (parent / "config.json").write_text(json.dumps(json.loads((folds[0] / "config.json").read_text())))
    (parent / "summary.json").write_text(json.dumps({"best_score": 0.5}))
    table = open_workspace("digits").table()
    test = table[table["split"] == "test"].reset_index(drop=True)
    mean = (predict_probs(folds[0], test) + predict_probs(folds[1], test)) / 2

    result = flow("predict", "digits", "--folds", "all")  # the best CV run, not the best run
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(parent / "test_probs.npy"), mean, atol=1e-6)
    result = flow("predict", "digits", "--folds", "all", "--run", "cv/fold1")  # a fold: its CV run
    assert result.exit_code == 0, result.output
    assert "Saved the test probabilities (297 x 10) to runs/digits/cv/test_probs.npy" in result.output
    assert one_line_error(flow("predict", "digits", "--folds", "all", "--run", "single")) == (
        "Error: runs/digits/single: not a cross-validation run; train one with `flow train digits --folds all`"
    )
    assert one_line_error(flow("predict", "digits", "--folds", "3")) == "Error: --folds takes 'all' (got '3')"


def test_ensemble_of_two_trained_runs(workdir: Path) -> None:
    from kaggle_flow.predict import predict_probs
    from kaggle_flow.workspace import open_workspace

    assert flow("split", "digits", "--val-size", "0.2").exit_code == 0
    for seed in ("1", "2"):
        result = flow("train", "digits", "--epochs", "1", "--seed", seed)
        assert result.exit_code == 0, result.output
    a, b = sorted(p for p in (workdir / "runs/digits").iterdir() if (p / "best.pdparams").is_file())
    result = flow("predict", "digits", "--ensemble", f"{a.name},{b.name}")
    assert result.exit_code == 0, result.output
    (ens,) = (workdir / "runs/digits").glob("ensemble-*")
    table = open_workspace("digits").table()
    test = table[table["split"] == "test"].reset_index(drop=True)
    mean = (predict_probs(a, test) + predict_probs(b, test)) / 2
    np.testing.assert_allclose(np.load(ens / "test_probs.npy"), mean, atol=1e-6)
    result = flow("submit", "--ensemble", f"{a.name},{b.name}", "--tta")
    assert result.exit_code == 0, result.output
    result = flow("score")
    assert result.exit_code == 0 and "Local accuracy of submissions/digits/" in result.output
