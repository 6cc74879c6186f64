"""`flow submit`, `flow score`, `flow submissions`, `flow predict` through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import fake_cv_run, fake_run, flow, one_line_error
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
    probs = fake_probs(cwd / "p" / "test_probs.npy", 5, 4)
    assert one_line_error(flow("submit", "lemon", "--data", data, "--probs", probs, "--tta")) == (
        "Error: --probs gives the probabilities: leave out --run, --ensemble, --folds and --tta"
    )


def test_submit_saved_probs_of_a_run(workdir: Path) -> None:
    run = fake_run(workdir / "runs/digits", "r1", score=0.75)
    fake_probs(run.test_probs, 297, 10)
    result = flow("submit", "digits", "--probs", run.test_probs)
    assert result.exit_code == 0, result.output
    ledger = pd.read_csv(workdir / "submissions/digits/ledger.csv", dtype=str, keep_default_na=False)
    assert ledger[["run", "kind", "model", "epochs", "cv_score"]].values.tolist() == [["r1", "single", "smallcnn", "1", "0.750000"]]

    other = fake_run(workdir / "runs/mnist", "m1", comp="mnist")
    fake_probs(other.test_probs, 297, 10)
    assert one_line_error(flow("submit", "digits", "--probs", other.test_probs)) == (
        "Error: runs/mnist/m1: a run of 'mnist', not of 'digits'"
    )


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
    line = (
        "Error: lemon: no test images (no test_images folder in raw); nothing to submit: "
        "flow train scores each run on its validation fold (flow split)"
    )
    assert one_line_error(flow("submit", "lemon", "--data", data, "--probs", probs)) == line
    assert one_line_error(flow("predict", "lemon", "--data", data)) == line


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
    # 80 columns: the scores are whole; the long file name stands whole on its own numbered line under the table
    assert max(map(len, result.output.splitlines())) <= 80 and "…" not in result.output
    lines = result.output.splitlines()
    body = lines[next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"}) + 1:]
    assert body[0].split()[-4:] == ["-", f"{want:.4f}", "-", "-"]  # no CV score for probabilities from a file, no leaderboard yet
    assert [line.split() for line in body if file.name in line] == [["1", file.name]]  # whole, under the table


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
    message = "Error: runs/digits/r3: trained with classes ['0', '1', '2'], 'digits' now has ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']"
    assert one_line_error(flow("predict", "digits", "--run", "r3")) == message
    fake_run(workdir / "runs/digits", "r10")
    assert one_line_error(flow("predict", "digits", "--ensemble", "r10,r3")) == message
    assert not list((workdir / "runs/digits").glob("ensemble-*"))
    assert not (workdir / "runs/digits/r10/test_probs.npy").exists()  # checked before any is predicted


def test_predict_without_runs(workdir: Path) -> None:
    assert one_line_error(flow("predict", "digits")) == (
        "Error: runs/digits: no finished training run yet; train one with `flow train digits`"
    )
    assert one_line_error(flow("predict", "digits", "--folds", "all")) == (
        "Error: runs/digits: no cross-validation run; train one with `flow train digits --folds all`"
    )


def _nan_weights(run_best: Path) -> int:
    """Overwrite the first weight of a saved state dict with NaN and +inf; how many weights that spoils."""
    import paddle

    state = paddle.load(str(run_best))
    key = next(k for k, v in state.items() if v.dtype == paddle.float32)
    values = state[key].numpy()
    values.flat[0], values.flat[-1] = np.nan, np.inf
    state[key] = paddle.to_tensor(values)
    paddle.save(state, str(run_best))
    return 2


def test_weights_that_are_not_finite_are_refused_by_every_command_that_predicts(workdir: Path) -> None:
    """A run that blew up can still end `finished`; its NaN weights would predict one class everywhere."""
    run = fake_run(workdir / "runs/digits", "r1")
    bad = _nan_weights(run.best)
    message = f"Error: runs/digits/r1/best.pdparams: {bad} weights are NaN or infinite; this run cannot predict (train again, e.g. with a lower --lr)"
    for command in (("submit", "digits"), ("predict", "digits", "--run", "r1"), ("export", "r1", "--comp", "digits")):
        assert one_line_error(flow(*command)) == message, command
    assert not (workdir / "submissions/digits").exists() or not list((workdir / "submissions/digits").glob("*.csv"))
    assert not run.test_probs.exists() and not (run.path / "export").exists()


def test_weights_file_cut_short_is_one_line(workdir: Path) -> None:
    run = fake_run(workdir / "runs/digits", "r1")
    run.best.write_bytes(run.best.read_bytes()[:100])
    assert one_line_error(flow("predict", "digits")) == (
        "Error: runs/digits/r1/best.pdparams: not a readable weights file (cut short, or not paddle's); "
        "train again, or name another run with --run"
    )


def test_submit_never_passes_over_a_damaged_run(workdir: Path) -> None:
    """The run a command would pick is damaged: one line saying so, not another run's submission."""
    runs = workdir / "runs/digits"
    fake_run(runs, "20250101-000000-smallcnn-f0", score=0.6)
    best = fake_run(runs, "20250102-000000-smallcnn-f0", score=0.9)
    best.best.unlink()  # finished, but its weights are gone
    assert one_line_error(flow("submit", "digits")) == (
        f"Error: runs/digits/{best.name}/best.pdparams: missing, although the run finished; train it again; it may be "
        f"the best run, so no other is picked in its place: repair or remove runs/digits/{best.name}, or name the run to use"
    )
    assert one_line_error(flow("submit", "digits", "--run", best.name)) == (
        f"Error: runs/digits/{best.name}/best.pdparams: no trained weights in this run folder (did the training finish an epoch?)"
    )
    newest = fake_run(runs, "20250103-000000-smallcnn-f0", score=0.95)
    newest.config_file.write_text("{")
    assert one_line_error(flow("predict", "digits", "--run", "last")).startswith(
        f"Error: runs/digits/{newest.name}/config.json: not readable JSON: "
    )
    assert one_line_error(flow("submit", "digits", "--run", newest.name)).startswith(f"Error: runs/digits/{newest.name}/config.json: ")
    assert not (workdir / "submissions/digits").exists() or not list((workdir / "submissions/digits").glob("*.csv"))
    newest.summary_file.write_text('{"status": "finished", "best_score": 0.1}')  # known to score below the others
    best.best.write_bytes(b"")
    best.summary_file.write_text('{"status": "finished", "best_score": 0.2}')
    result = flow("submit", "digits")
    assert result.exit_code == 0, result.output
    assert "(20250101-000000-smallcnn-f0)" in result.output


def digits_test_rows() -> pd.DataFrame:
    from kaggle_flow.workspace import open_workspace

    table = open_workspace("digits", remember_it=False).table()
    return table[table["split"] == "test"].reset_index(drop=True)


def test_predict_tta_ensemble_and_submit_fake_runs(workdir: Path) -> None:
    from kaggle_flow.run_table import list_runs
    from kaggle_flow.runs import Ensemble, Run, load_run
    from kaggle_flow.submit.predict import predict_probs

    a = fake_run(workdir / "runs/digits", "a", seed=1, score=0.4)
    b = fake_run(workdir / "runs/digits", "b", seed=2, score=0.6)
    test = digits_test_rows()

    result = flow("predict", "digits", "--run", "a", "--tta")
    assert result.exit_code == 0, result.output
    assert "Saved the test probabilities (297 x 10) to runs/digits/a/test_probs.npy" in result.output
    # digits are handed: the affine recipe never flips, so neither does its TTA
    assert "(with TTA: each image averaged with 4 shifts of 1 px; the affine preset does not flip)" in result.output
    tta = np.load(a.test_probs)
    np.testing.assert_allclose(tta, predict_probs(a, test, tta=True), atol=1e-6)
    assert not np.allclose(tta, predict_probs(a, test))

    result = flow("predict", "--ensemble", "a,b")
    assert result.exit_code == 0, result.output
    (path,) = (workdir / "runs/digits").glob("ensemble-*")
    ens = load_run(path)
    assert ens.kind == "ensemble" and [m.id for m in ens.members()] == ["a", "b"]
    assert f"Averaged a,b into runs/digits/{ens.name} (submit it with `flow submit --run {ens.name}`)" in result.output
    mean = (predict_probs(a, test) + predict_probs(b, test)) / 2
    np.testing.assert_allclose(np.load(ens.test_probs), mean, atol=1e-6)
    np.testing.assert_allclose(predict_probs(ens, test), mean, atol=1e-6)
    assert isinstance(ens, Ensemble) and isinstance(a, Run)  # an ensemble is no training run
    assert one_line_error(flow("predict", "digits", "--folds", "all", "--run", ens.name)) == (
        f"Error: runs/digits/{ens.name}: not a cross-validation run; train one with `flow train digits --folds all`"
    )
    assert one_line_error(flow("export", ens.name, "--comp", "digits")) == (
        f"Error: runs/digits/{ens.name}: an ensemble averages its members; export one of them (a, b)"
    )
    listed = list_runs(workdir / "runs/digits").set_index("run").loc[ens.name]
    assert (listed["kind"], listed["recipe"], listed["status"], listed["procs"]) == ("ensemble", "ensemble of 2", "ensemble", 0)

    result = flow("submit")  # the best run by validation score: b
    assert result.exit_code == 0, result.output
    assert "training set vs. predicted (b)" in result.output
    result = flow("submit", "--run", ens.name)
    assert result.exit_code == 0, result.output
    (sub,) = (workdir / "submissions/digits").glob(f"*_{ens.name}.csv")
    assert pd.read_csv(sub)["label"].tolist() == mean.argmax(axis=1).tolist()
    ledger = pd.read_csv(workdir / "submissions/digits/ledger.csv", dtype=str, keep_default_na=False)
    assert ledger["run"].tolist() == ["b", ens.name] and ledger["kind"].tolist() == ["single", "ensemble"]
    assert ledger["cv_score"].tolist() == ["0.600000", ""] and ledger["model"].tolist() == ["smallcnn", ""]


def test_predict_folds_all_picks_the_cross_validation_run(workdir: Path) -> None:
    from kaggle_flow.submit.predict import predict_probs

    fake_run(workdir / "runs/digits", "single", score=0.99)
    cv = fake_cv_run(workdir / "runs/digits", "cv")
    assert cv.kind == "cv" and [f.id for f in cv.folds()] == ["cv/fold0", "cv/fold1"]

    result = flow("predict", "digits", "--folds", "all")  # the best CV run, not the best run
    assert result.exit_code == 0, result.output
    assert "Saved the test probabilities (297 x 10) to runs/digits/cv/test_probs.npy" in result.output
    test = digits_test_rows()
    mean = (predict_probs(cv.folds()[0], test) + predict_probs(cv.folds()[1], test)) / 2
    np.testing.assert_allclose(np.load(cv.test_probs), mean, atol=1e-6)
    cv.test_probs.unlink()
    result = flow("predict", "digits", "--folds", "all", "--run", "cv/fold1")  # a fold: its CV run
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(cv.test_probs), mean, atol=1e-6)
    assert one_line_error(flow("predict", "digits", "--folds", "all", "--run", "single")) == (
        "Error: runs/digits/single: not a cross-validation run; train one with `flow train digits --folds all`"
    )
    assert one_line_error(flow("predict", "digits", "--folds", "3")) == "Error: --folds takes 'all' (got '3')"
    assert one_line_error(flow("predict", "digits", "--folds", "all", "--ensemble", "cv,single")) == (
        "Error: --ensemble lists its runs: leave out --run and --folds"
    )


def test_predict_and_submit_folds_all_of_a_trained_cv_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiny_comp import make_tiny

    from kaggle_flow.engine import train
    from kaggle_flow.explore.split import split_competition
    from kaggle_flow.submit.predict import predict_probs
    from kaggle_flow.workspace import open_workspace

    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path)
    ws = open_workspace("tiny")
    split_competition(ws, folds=2, seed=0)
    cv = train.train(ws, {"folds": "all", "epochs": 1})
    assert cv.kind == "cv" and [f.name for f in cv.folds()] == ["fold0", "fold1"]
    test = ws.table().query("split == 'test'").reset_index(drop=True)
    fold_probs = [predict_probs(f, test) for f in cv.folds()]
    assert not np.allclose(fold_probs[0], fold_probs[1])
    mean = np.mean(fold_probs, axis=0)

    result = flow("predict", "tiny", "--folds", "all")
    assert result.exit_code == 0, result.output
    assert f"Predicted with runs/tiny/{cv.name}" in result.output
    np.testing.assert_allclose(np.load(cv.test_probs), mean, atol=1e-6)

    cv.test_probs.unlink()
    result = flow("submit", "tiny", "--folds", "all")
    assert result.exit_code == 0, result.output
    (sub,) = (tmp_path / "submissions/tiny").glob(f"*_{cv.name}.csv")
    np.testing.assert_allclose(np.load(cv.test_probs), mean, atol=1e-6)  # what was submitted
    frame = pd.read_csv(sub)
    assert frame["id"].tolist() == [f"test_{i:02d}.png" for i in range(6)]
    assert frame["label"].tolist() == mean.argmax(axis=1).tolist()
    ledger = pd.read_csv(tmp_path / "submissions/tiny/ledger.csv", dtype=str, keep_default_na=False)
    assert ledger["run"].tolist() == [cv.id] and ledger["kind"].tolist() == ["cv"]
    assert float(ledger["cv_score"].iloc[0]) == pytest.approx(cv.summary.cv_score, abs=1e-6)

    result = flow("submit", "tiny", "--run", f"{cv.name}/fold1")  # one fold alone: its own file name
    assert result.exit_code == 0, result.output
    (sub,) = (tmp_path / "submissions/tiny").glob(f"*_{cv.name}-fold1.csv")
    assert pd.read_csv(sub)["label"].tolist() == fold_probs[1].argmax(axis=1).tolist()


def test_ensemble_of_two_trained_runs(workdir: Path) -> None:
    from kaggle_flow.runs import all_runs
    from kaggle_flow.submit.predict import predict_probs
    from kaggle_flow.workspace import open_workspace

    assert flow("split", "digits", "--val-size", "0.2").exit_code == 0
    for seed in ("1", "2"):
        result = flow("train", "digits", "--epochs", "1", "--seed", seed)
        assert result.exit_code == 0, result.output
    a, b = all_runs(open_workspace("digits").runs_dir)
    result = flow("predict", "digits", "--ensemble", f"{a.name},{b.name}")
    assert result.exit_code == 0, result.output
    (ens,) = [r for r in all_runs(workdir / "runs/digits") if r.kind == "ensemble"]
    test = digits_test_rows()
    mean = (predict_probs(a, test) + predict_probs(b, test)) / 2
    np.testing.assert_allclose(np.load(ens.test_probs), mean, atol=1e-6)
    result = flow("submit", "--ensemble", f"{a.name},{b.name}", "--tta")
    assert result.exit_code == 0, result.output
    result = flow("score")
    assert result.exit_code == 0 and "Local accuracy of submissions/digits/" in result.output
    ledger = pd.read_csv(workdir / "submissions/digits/ledger.csv", dtype=str, keep_default_na=False)
    assert ledger["kind"].tolist() == ["ensemble"] and ledger["tta"].tolist() == ["yes"]
    assert float(ledger["local_score"].iloc[0]) > 0.5


@pytest.mark.parametrize("columns", ["80", "200"])
def test_submissions_keep_each_file_name_whole_on_one_line(workdir: Path, columns: str) -> None:
    """The file name is what a user copies (`flow score FILE`, the site's upload): never folded."""
    from clitools import runner

    from kaggle_flow.cli import app

    fake_run(workdir / "runs/digits", "a-run-with-a-long-name-that-makes-the-file-name-long", score=0.9)
    assert flow("submit", "digits").exit_code == 0
    (file,) = [p.name for p in (workdir / "submissions/digits").glob("*.csv") if p.name != "ledger.csv"]
    result = runner.invoke(app, ["submissions", "digits"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    assert any(file in line for line in result.output.splitlines()), result.output
    assert all(len(line) <= int(columns) for line in result.output.splitlines())
