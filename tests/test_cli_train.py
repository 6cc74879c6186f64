"""`flow train` and `flow runs` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from clitools import flow, one_line_error, runner

from kaggle_flow.cli import app


def test_train_digits_end_to_end_and_runs(workdir: Path) -> None:
    result = runner.invoke(app, ["train", "digits", "--epochs", "2", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "No folds yet: made a stratified 10% hold-out (seed 42) as fold 0 in runs/digits/folds.csv" in result.output
    runs = [p for p in (workdir / "runs/digits").iterdir() if p.name.endswith("-smallcnn-f0")]
    assert len(runs) == 1
    run = runs[0]
    for name in ("config.json", "metrics.csv", "best.pdparams", "last.pdparams", "last.pdopt", "curves.png",
                 "confusion.png", "oof.csv", "summary.json"):
        assert (run / name).is_file(), name
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2]
    assert {"lr", "train_loss", "val_loss", "val_acc", "val_metric", "recall_0"} <= set(metrics.columns)
    config = json.loads((run / "config.json").read_text())
    assert config["competition"] == "digits" and config["epochs"] == 2 and config["seed"] == 3
    assert config["image_size"] == 16 and config["channels"] == 1 and config["run"] == run.name
    oof = pd.read_csv(run / "oof.csv")
    assert len(oof) == 150 and list(oof.columns[:3]) == ["id", "label", "pred"] and "prob_9" in oof.columns
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_done"] == 2 and summary["best_score"] > 0.5

    listed = runner.invoke(app, ["runs", "digits"])
    assert listed.exit_code == 0, listed.output
    assert run.name in listed.output and "smallcnn" in listed.output and "finished" in listed.output


def test_runs_without_runs(workdir: Path) -> None:
    result = runner.invoke(app, ["runs", "digits"])
    assert result.exit_code == 0
    assert "No runs yet in runs/digits; train one with: flow train digits" in result.output


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--optimizer", "Error: unknown optimizer 'nope' (valid: adam, adamw, sgd)"),
        ("--schedule", "Error: unknown schedule 'nope' (valid: cosine, step, constant)"),
        ("--preset", "Error: unknown augmentation preset 'nope' (valid: none, flip, affine, light, medium, heavy)"),
        ("--loss", "Error: unknown loss 'nope' (valid: ce, weighted, focal, bce, asl)"),
    ],
)
def test_unknown_names_are_one_line(workdir: Path, flag: str, message: str) -> None:
    assert one_line_error(flow(*["train", "digits", flag, "nope"])) == message


def test_unknown_model_lists_the_models(workdir: Path) -> None:
    from kaggle_flow.models import MODELS

    assert one_line_error(flow(*["train", "digits", "--model", "nope"])) == f"Error: unknown model 'nope' (valid: {', '.join(MODELS)})"


def test_too_small_images_and_too_many_params(workdir: Path) -> None:
    assert one_line_error(flow(*["train", "digits", "--model", "resnet18"])) == (
        "Error: image size 16 is too small for resnet18: it needs at least 32 px"
    )
    from kaggle_flow.models import count_params, create_model

    n = count_params(create_model("smallcnn", 10, 1))
    assert 100_000 < n < 200_000
    assert one_line_error(flow(*["train", "digits", "--max-params", "1000"])) == (
        f"Error: smallcnn has {n:,} parameters, over the competition's limit of 1,000: pick a smaller model"
    )
    assert one_line_error(flow(*["train", "digits", "--sizes", "8,x"])) == (
        "Error: --sizes takes pixel sizes separated by commas, e.g. 64,128,224 (got '8,x')"
    )
    assert not (workdir / "runs/digits").exists() or not [
        p for p in (workdir / "runs/digits").iterdir() if p.is_dir() and p.name not in ("eda", "cache")
    ]


def test_folds_all_needs_k_folds_and_resume_needs_a_run(workdir: Path) -> None:
    runner.invoke(app, ["split", "digits", "--val-size", "0.1"])
    assert one_line_error(flow(*["train", "digits", "--folds", "all"])) == (
        "Error: runs/digits/folds.csv: a single hold-out, not K folds; make folds first: flow split digits --folds 5"
    )
    assert one_line_error(flow(*["train", "digits", "--folds", "3"])) == "Error: --folds takes 'all' (got '3')"
    line = one_line_error(flow(*["train", "digits", "--resume", "nope"]))
    assert line.startswith("Error: unknown run 'nope' in runs/digits (runs: ")


def _trainable(file: Path) -> dict:
    import paddle

    return {k: v.numpy() for k, v in paddle.load(str(file)).items() if not k.endswith(("_mean", "_variance"))}


def test_weights_start_training_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from tiny_comp import make_tiny

    from kaggle_flow.runs import all_runs
    from kaggle_flow.engine.train import train
    from kaggle_flow.workspace import open_workspace

    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path)
    ws = open_workspace("tiny")
    source = train(ws, {"epochs": 4})
    start = _trainable(source.best)

    def new_run(*flags: str):  # type: ignore[no-untyped-def]
        result = flow("train", "tiny", "--epochs", "1", "--seed", "7", *flags)
        assert result.exit_code == 0, result.output
        return all_runs(ws.runs_dir)[-1]

    # a learning rate too small to move anything: training ends where the file started it
    still = new_run("--lr", "1e-9", "--weights", source.best)
    assert still.config.weights == str(source.best)
    for key, value in _trainable(still.last).items():
        np.testing.assert_allclose(value, start[key], atol=1e-6, err_msg=key)
    fresh = _trainable(new_run("--lr", "1e-9").last)
    assert not np.allclose(fresh["fc.weight"], start["fc.weight"], atol=1e-3)

    # with the recipe's rate, the first epoch starts from a model that already knows the stripes
    scratch = pd.read_csv(new_run().metrics_file)
    warm = pd.read_csv(new_run("--weights", source.best).metrics_file)
    assert warm["train_loss"].iloc[0] < scratch["train_loss"].iloc[0]
    assert warm["val_metric"].iloc[0] >= scratch["val_metric"].iloc[0]


def test_weights_of_another_class_count_keep_a_fresh_head(workdir: Path) -> None:
    from clitools import fake_run

    other = fake_run(workdir / "runs/digits", "three", classes=3)
    result = flow("train", "digits", "--epochs", "1", "--weights", other.best)
    assert result.exit_code == 0, result.output
    assert f"Warning: {other.best.relative_to(workdir)}: classifier head of another class count; fc.weight, fc.bias left freshly initialized" in result.output
    assert one_line_error(flow("train", "digits", "--weights", "nope.pdparams")).startswith("Error: nope.pdparams")


def test_runs_lists_damaged_killed_and_checkpointless_runs(workdir: Path) -> None:
    """No run folder vanishes from `flow runs`, and each says what to do with it."""
    from clitools import fake_run

    from kaggle_flow.run_table import list_runs

    runs = workdir / "runs/digits"
    fake_run(runs, "20250101-000000-smallcnn-f0", score=0.9)
    killed = fake_run(runs, "20250102-000000-smallcnn-f0")  # kill -9 after epoch 1: a checkpoint, no summary
    (killed.path / "summary.json").unlink()
    killed.last_state.write_bytes(b"state")
    killed.metrics_file.write_text("epoch,val_metric\n1,0.61\n")
    early = fake_run(runs, "20250103-000000-smallcnn-f0")  # failed before its first epoch: a config.json alone
    (early.path / "summary.json").unlink()
    early.best.unlink()
    broken = fake_run(runs, "20250104-000000-smallcnn-f0")
    broken.config_file.write_text("{broken")

    listed = list_runs(runs).set_index("run")
    assert listed["status"].to_dict() == {
        "20250101-000000-smallcnn-f0": "finished", killed.name: "resumable", early.name: "no checkpoint", broken.name: "damaged",
    }
    assert listed.loc[killed.name, "epochs"] == "1/1" and listed.loc[killed.name, "best_score"] == 0.61
    result = flow("runs", "digits")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip().startswith("2025")}
    assert " 0.6100 " in rows[killed.name] and " resumable" in rows[killed.name]
    assert " no checkpoint" in rows[early.name] and " damaged" in rows[broken.name]
    lines = result.output.splitlines()
    assert (
        f"{killed.name}: stopped after epoch 1 of 1 without a summary (killed, or still training); "
        f"resume: flow train digits --resume {killed.name}"
    ) in lines
    assert (
        f"{early.name}: stopped before its first epoch ended (or is still in it); nothing to resume: "
        "remove it, or train anew: flow train digits"
    ) in lines
    assert (
        f"Warning: {broken.name}: damaged: runs/digits/{broken.name}/config.json: not readable JSON: Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1); it is never picked: repair or remove it"
    ) in lines


def test_full_never_refits_another_recipe_in_place_of_a_damaged_run(workdir: Path) -> None:
    from clitools import fake_run

    from kaggle_flow.engine.configure import validated_source
    from kaggle_flow.workspace import open_workspace

    runs = workdir / "runs/digits"
    good = fake_run(runs, "20250101-000000-smallcnn-f0", score=0.9)
    broken = fake_run(runs, "20250102-000000-smallcnn-f0", score=0.95)  # its summary says it may be the best
    broken.config_file.write_text("{broken")
    assert flow("split", "digits").exit_code == 0
    line = one_line_error(flow("train", "digits", "--full"))
    assert line.startswith(f"Error: runs/digits/{broken.name}/config.json: not readable JSON") and line.endswith(
        f"it may be the best run, so --full refits no other in its place: repair or remove runs/digits/{broken.name}")
    broken.summary_file.write_text(broken.summary_file.read_text().replace("0.95", "0.5"))  # scored below the good run
    assert validated_source(open_workspace("digits")).name == good.name


def test_runs_lists_a_run_whose_summary_or_best_weights_are_damaged(workdir: Path) -> None:
    from clitools import fake_run

    from kaggle_flow.run_table import list_runs

    runs = workdir / "runs/digits"
    garbled = fake_run(runs, "20250101-000000-smallcnn-f0")
    garbled.summary_file.write_text("[1, 2")
    lost = fake_run(runs, "20250102-000000-smallcnn-f0")
    lost.best.unlink()
    stopped = fake_run(runs, "20250103-000000-smallcnn-f0")  # Ctrl-C after epoch 1, resumed, then killed after epoch 2
    stopped.summary_file.write_text('{"status": "interrupted", "epochs_done": 1}')
    stopped.metrics_file.write_text("epoch,val_metric\n1,0.5\n2,0.6\n")
    result = flow("runs", "digits")
    assert result.exit_code == 0, result.output
    assert f"{stopped.name}: interrupted; resume: flow train digits --resume {stopped.name}" in result.output
    assert list_runs(runs).set_index("run").loc[stopped.name, "epochs"] == "2/1"
    assert f"Warning: {garbled.name}: damaged: runs/digits/{garbled.name}/summary.json: not a readable summary (" in result.output
    assert f"Warning: {lost.name}: damaged: runs/digits/{lost.name}/best.pdparams: missing, although the run finished; train it again" in result.output
