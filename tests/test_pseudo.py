"""`flow train --pseudo RUN`: confident test predictions join each fold's training rows, never validation."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clitools import fake_run, flow, one_line_error
from kaggle_flow.runs import Summary, load_run

RUNS = Path("runs/digits")
TEACHER = "20250101-000000-smallcnn-f0"
K = 37  # test images the fake teacher is sure of


def _confident(n: int, k: int = 10) -> np.ndarray:
    """Probabilities whose top reaches 0.95 in exactly the first K rows (class i % 10; row K-1 at 0.95 itself)."""
    probs = np.full((n, k), 0.9 / (k - 1), np.float32)
    probs[:, 0] = 0.1
    for i in range(n):
        top = 0.97 if i < K - 1 else 0.95 if i == K - 1 else 0.94
        probs[i] = (1.0 - top) / (k - 1)
        probs[i, i % k] = top
    return probs


@pytest.fixture
def teacher(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake run trained without label smoothing (sure means 1) whose test predictions are `_confident`
    (no model is run)."""
    run = fake_run(workdir / RUNS, TEACHER, label_smoothing=0.0)
    monkeypatch.setattr("kaggle_flow.submit.teacher.predict_probs", lambda r, rows: _confident(len(rows)))
    return run.path


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list:
    """The FoldData (fold_data.prepare_data) of every fit: the rows the loaders are built from."""
    import kaggle_flow.engine.fit as fit_module

    real, found = fit_module.prepare_data, []

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        data = real(*args, **kwargs)
        found.append(data)
        return data

    monkeypatch.setattr(fit_module, "prepare_data", spy)
    return found


def _test_ids() -> pd.Series:
    from kaggle_flow.workspace import open_workspace

    table = open_workspace("digits", remember_it=False).table(quiet=True)
    return table.loc[table["split"] == "test", "id"].reset_index(drop=True)


def _new_run() -> Path:
    return sorted(p for p in RUNS.glob("2*") if p.is_dir() and p.name != TEACHER)[-1]


def test_confident_test_images_join_training_only(teacher: Path, seen: list) -> None:
    from kaggle_flow.submit.ledger import read_ledger, recipe_summary

    plain = flow("train", "digits", "--model", "smallcnn", "--size", "8", "--epochs", "1")
    assert plain.exit_code == 0, plain.output
    result = flow("train", "digits", "--model", "smallcnn", "--size", "8", "--epochs", "1", "--pseudo", TEACHER)
    assert result.exit_code == 0, result.output
    before, after = seen
    assert len(after.train_rows) == len(before.train_rows) + K
    pd.testing.assert_frame_equal(after.val_rows, before.val_rows)
    joined = after.train_rows.iloc[len(before.train_rows):]
    ids = _test_ids()
    assert joined["id"].tolist() == ids.iloc[:K].tolist()
    assert joined["label"].tolist() == [i % 10 for i in range(K)]  # the argmax
    per_class = ", ".join(f"{c}: {sum(1 for i in range(K) if i % 10 == c)}" for c in range(10))
    line = (f"Pseudo-labels from {TEACHER}: {K} of {len(ids)} test images at p >= 0.95 join training with the predicted "
            f"label ({per_class}); validation unchanged")
    assert line in " ".join(result.output.split())
    loader = after.train_loader(1, after.config.image_size)
    assert set(ids.iloc[:K]) <= set(loader.dataset.ids)  # the loader holds their images
    config = load_run(_new_run()).config
    assert (config.pseudo, config.pseudo_threshold, config.pseudo_count, config.pseudo_soft) == (TEACHER, 0.95, K, False)
    assert recipe_summary(config)["pseudo"] == f"{K} at p>=0.95 from {TEACHER}"
    assert recipe_summary(load_run(teacher).config)["pseudo"] == ""
    Path("old").mkdir()
    (Path("old") / "ledger.csv").write_text("time,file,run,kind,model\n2025-01-01 00:00:00,a.csv,r,single,smallcnn\n")
    assert read_ledger(Path("old"))["pseudo"].tolist() == [""]


def test_soft_pseudo_labels_reach_the_loader_as_probabilities(teacher: Path, seen: list) -> None:
    import paddle

    from kaggle_flow.target import TARGETS

    result = flow("train", "digits", "--model", "smallcnn", "--size", "8", "--epochs", "1", "--pseudo", TEACHER, "--pseudo-soft",
                  "--pseudo-threshold", "0.96")
    assert result.exit_code == 0, result.output
    (data,) = seen
    dataset = data.train_loader(1, data.config.image_size).dataset
    probs = dict(zip(_test_ids(), _confident(len(_test_ids()))))
    soft = [i for i, image_id in enumerate(dataset.ids) if image_id in probs]
    assert len(soft) == K - 1  # 0.95 is under 0.96
    for i in soft:
        np.testing.assert_allclose(dataset[i][1], probs[dataset.ids[i]], rtol=1e-5)
    hard = next(i for i, image_id in enumerate(dataset.ids) if image_id not in probs)
    assert dataset[hard][1].tolist() == np.eye(10)[dataset.labels[hard]].tolist()  # one-hot
    targets = TARGETS["single"].batch_targets(paddle.to_tensor(np.stack([dataset[i][1] for i in soft[:3]])), 10)
    assert targets.argmax(axis=1).numpy().tolist() == [probs[dataset.ids[i]].argmax() for i in soft[:3]]
    assert "as soft targets" in result.output and load_run(_new_run()).config.pseudo_soft


def test_every_fold_gets_the_same_test_rows_and_no_out_of_fold_ids(teacher: Path, seen: list) -> None:
    assert flow("split", "digits", "--folds", "2").exit_code == 0
    result = flow("train", "digits", "--model", "smallcnn", "--size", "8", "--epochs", "1", "--folds", "all", "--pseudo", TEACHER)
    assert result.exit_code == 0, result.output
    assert result.output.count("Pseudo-labels from") == 1  # predicted once
    test_ids = set(_test_ids().iloc[:K])
    for data in seen:
        joined = data.train_rows[data.train_rows["split"] == "test"]
        assert set(joined["id"]) == test_ids
        assert not set(data.val_rows["id"]) & test_ids
        labelled = data.train_rows[data.train_rows["split"] != "test"]
        assert not set(labelled["id"]) & set(data.val_rows["id"])  # no out-of-fold row added
    assert len(seen) == 2


def test_none_confident_enough_is_a_warning(teacher: Path, seen: list) -> None:
    result = flow("train", "digits", "--model", "smallcnn", "--size", "8", "--epochs", "1", "--pseudo", TEACHER, "--pseudo-threshold", "0.99")
    assert result.exit_code == 0, result.output
    assert f"none of its {len(_test_ids())} test predictions reaches p >= 0.99" in " ".join(result.output.split())
    assert load_run(_new_run()).config.pseudo_count == 0


@pytest.mark.parametrize(("value", "says"), [("0", "--pseudo-threshold must be above 0 (got 0.0)"),
                                              ("1.5", "--pseudo-threshold must be at most 1 (got 1.5)"),
                                              ("nan", "--pseudo-threshold must be a finite number (got nan)")])
def test_the_threshold_is_range_checked(teacher: Path, value: str, says: str) -> None:
    line = one_line_error(flow("train", "digits", "--pseudo", TEACHER, "--pseudo-threshold", value))
    assert line.endswith(says)
    assert sorted(p.name for p in RUNS.glob("2*")) == [TEACHER]


def test_threshold_alone_is_one_line(workdir: Path) -> None:
    assert "--pseudo-threshold goes with --pseudo RUN" in one_line_error(flow("train", "digits", "--pseudo-threshold", "0.9"))


def _refused(*args: str) -> str:
    before = sorted(p.name for p in RUNS.glob("*"))
    line = one_line_error(flow("train", "digits", "--model", "smallcnn", "--size", "8", "--epochs", "1", *args))
    assert sorted(p.name for p in RUNS.glob("*")) == before  # nothing trained
    return line


def test_teachers_that_cannot_label_are_refused(teacher: Path) -> None:
    other = fake_run(Path("runs/mnist"), "20250101-000000-smallcnn-f0", comp="mnist")
    assert f"a run of 'mnist', not of 'digits'" in _refused("--pseudo", str(other.path))
    fake_run(RUNS, "20250101-000001-smallcnn-f0", classes=3)
    assert "trained with classes" in _refused("--pseudo", "20250101-000001-smallcnn-f0")
    failed = fake_run(RUNS, "20250101-000002-smallcnn-f0")
    failed.write_summary(Summary(status="failed", reason="loss became nan", metric="accuracy"))
    assert "--pseudo 20250101-000002-smallcnn-f0: a failed run (loss became nan)" in _refused("--pseudo", failed.name)
    damaged = fake_run(RUNS, "20250101-000003-smallcnn-f0")
    damaged.best.unlink()
    assert re.search(r"--pseudo 20250101-000003-smallcnn-f0: damaged \(.*missing", _refused("--pseudo", damaged.name))
    assert "unknown run 'nope'" in _refused("--pseudo", "nope")


def test_pseudo_with_resume_is_refused(teacher: Path) -> None:
    assert f"--pseudo {TEACHER}: the run being resumed" in _refused("--resume", TEACHER, "--pseudo", TEACHER)
    other = fake_run(RUNS, "20250101-000001-smallcnn-f0")
    assert f"--pseudo goes with a new run: {TEACHER} continues" in _refused("--resume", TEACHER, "--pseudo", other.name)


def test_a_resumed_run_reads_the_same_rows_back(teacher: Path) -> None:
    from kaggle_flow.engine.train import run_pseudo
    from kaggle_flow.errors import DataError
    from kaggle_flow.pseudo import select, write_pseudo

    test = pd.DataFrame({"id": _test_ids(), "path": [f"data/digits/test/{i}" for i in _test_ids()]})
    labels = select(TEACHER, test, _confident(len(test)), 0.95, soft=False)
    run = fake_run(RUNS, "20250101-000001-smallcnn-f0", **labels.config_keys())
    write_pseudo(run.path, labels)
    back = run_pseudo(run)
    assert back["id"].tolist() == labels.rows["id"].tolist() and back["label"].tolist() == labels.rows["label"].tolist()
    (run.path / "pseudo.csv").unlink()
    with pytest.raises(DataError, match=f"not the {K} pseudo-labelled rows 20250101-000001-smallcnn-f0 started with"):
        run_pseudo(run)


def test_the_threshold_is_a_share_of_what_a_teacher_trained_with_label_smoothing_gives_when_sure(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Label smoothing 0.1 over ten classes tops a sure teacher out at 0.91: at the default 0.95 an image
    needs 0.95 x 0.91 = 0.8645, not 0.95, which no image of a well-trained smoothed teacher reaches."""
    fake_run(workdir / RUNS, TEACHER, label_smoothing=0.1)
    tops = np.array([0.91, 0.87, 0.8646, 0.864, 0.5])
    probs = np.tile(((1.0 - tops) / 9)[:, None], (1, 10)).astype(np.float32)
    probs[np.arange(5), np.arange(5)] = tops

    def predicted(run, rows):  # type: ignore[no-untyped-def]
        out = np.full((len(rows), 10), 0.1, np.float32)
        out[:5] = probs
        return out

    monkeypatch.setattr("kaggle_flow.submit.teacher.predict_probs", predicted)
    result = flow("train", "digits", "--model", "smallcnn", "--size", "8", "--epochs", "1", "--pseudo", TEACHER)
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split())
    assert "3 of 297 test images at p >= 0.8645 (0.95 of the 0.91 it gives when sure, after label smoothing)" in line, line
    joined = pd.read_csv(_new_run() / "pseudo.csv")
    assert joined["label"].tolist() == [0, 1, 2]
