"""Faults on the training and submission side: a diverging loss, interrupts (Ctrl-C, SIGTERM), and a
kill between a submission file and its ledger row. Each ends in one line and leaves nothing half made."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import pandas as pd
import pytest
from clitools import fake_run, flow, one_line_error

from kaggle_flow.competition import get_competition
from kaggle_flow.engine import fit
from kaggle_flow.errors import FlowError
from kaggle_flow.runs import load_run
from kaggle_flow.submit.ledger import add_entry, read_ledger
from kaggle_flow.submit.submission import check_probs

TINY = ("--model", "smallcnn", "--size", "8")


def _runs(workdir: Path) -> list[Path]:
    folder = workdir / "runs" / "digits"
    return sorted(p for p in folder.iterdir() if (p / "config.json").is_file()) if folder.is_dir() else []


def error_line(result: object) -> str:
    """The last line of a failed command: exit 1, an `Error:` line, no traceback (progress lines may come before)."""
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    output = result.output  # type: ignore[attr-defined]
    assert "Traceback" not in output
    line = [line for line in output.splitlines() if line.strip()][-1]
    assert line.startswith("Error: ") and output.count("Error: ") == 1, output
    return line


def _temps(workdir: Path) -> list[Path]:
    return [p for p in workdir.rglob("*.tmp") if "data" not in p.parts]


# --- a diverging loss ----------------------------------------------------------------------------


def test_a_diverging_run_stops_at_the_step_and_is_marked_failed(workdir: Path) -> None:
    line = error_line(flow("train", "digits", *TINY, "--epochs", "3", "--lr", "1e38"))
    assert line.startswith("Error: loss became nan at epoch 1, step ")
    assert "of 21 (lr " in line and "training diverged; the learning rate is likely too high for this model (--lr 1e+38; try --lr 1e+37)" in line
    (run,) = _runs(workdir)
    assert line.endswith(f"{run.relative_to(workdir)} is marked failed")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_done"] == 0 and "loss became nan" in summary["reason"]
    assert "failed" in flow("runs", "digits").output

    # never picked by `flow submit`, and refused when named
    assert one_line_error(flow("submit", "digits")) == (
        "Error: runs/digits: no finished training run yet; train one with `flow train digits`"
    )
    line = one_line_error(flow("submit", "digits", "--run", run.name))
    assert line.startswith(f"Error: runs/digits/{run.name}: a failed run (loss became nan at epoch 1")
    assert not (workdir / "submissions").exists()


def test_a_loss_that_explodes_while_finite_fails_the_run(workdir: Path) -> None:
    """Adam at --lr 1e12: the loss goes from 2.3 to ~50 and stays finite; the run ended `finished` at chance."""
    line = error_line(flow("train", "digits", *TINY, "--epochs", "2", "--lr", "1e12"))
    assert line.startswith("Error: loss exploded to ") and " in epoch 1, over 10x the " in line
    assert "it started from (lr " in line and "training diverged; the learning rate is likely too high" in line
    assert "float16" not in line  # no --amp
    (run,) = _runs(workdir)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["reason"].startswith("loss exploded to ")
    assert not (run / "best.pdparams").exists()


def test_a_multi_label_loss_explodes_at_ten_times_ln_2() -> None:
    """A sigmoid head's binary cross entropy starts near ln 2 whatever the class count: a loss of 8 for
    17 tags has blown up, though it is under 10 x ln 17, where one class an image would still be."""
    from kaggle_flow.engine.loop import EpochResult, ExplodingLoss, check_loss
    from kaggle_flow.target import TARGETS

    epoch = EpochResult(loss=8.0, acc=0.5, lr=3e-3, images=64, seconds=1.0)
    with pytest.raises(ExplodingLoss):
        check_loss(epoch, 0.69, TARGETS["multi"].chance_loss(17))
    check_loss(epoch, 2.8, TARGETS["single"].chance_loss(17))  # 8 < 10 x ln 17: no error


def _after_the_epoch(monkeypatch: pytest.MonkeyPatch, change: object, *, epoch: int = 1) -> None:
    """fit's epochs as they are, with `change(model)` applied to the weights after epoch `epoch`'s steps."""
    real, calls = fit.train_one_epoch, []

    def changed(state: object, *args: object, **kwargs: object) -> object:
        result = real(state, *args, **kwargs)
        calls.append(1)
        if len(calls) == epoch:
            with paddle.no_grad():
                change(state.model)  # type: ignore[attr-defined,operator]
        return result

    monkeypatch.setattr(fit, "train_one_epoch", changed)


def test_nan_weights_are_never_saved_as_best(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss of the epoch's steps stayed finite, the update after the last one did not."""

    def nan_weights(model: paddle.nn.Layer) -> None:
        first = model.parameters()[0]
        first.set_value(paddle.full(first.shape, float("nan"), first.dtype))

    _after_the_epoch(monkeypatch, nan_weights, epoch=2)
    line = error_line(flow("train", "digits", *TINY, "--epochs", "3"))
    (run,) = _runs(workdir)
    assert line.startswith("Error: ") and " weights became NaN or infinite in epoch 2: training diverged; " in line
    assert line.endswith(f"{run.relative_to(workdir)} is marked failed")
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["epochs_done"]) == ("failed", 1)
    for name in ("best.pdparams", "last.pdparams"):
        weights = paddle.load(str(run / name))
        assert all(np.isfinite(v.numpy()).all() for v in weights.values())


def test_a_run_at_chance_level_says_so(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that predicts one class for every image: 0.1 accuracy on ten balanced classes."""

    def zero(model: paddle.nn.Layer) -> None:
        for value in model.state_dict().values():
            value.set_value(paddle.zeros(value.shape, value.dtype))

    _after_the_epoch(monkeypatch, zero)
    result = flow("train", "digits", *TINY, "--epochs", "1", "--ema", "0")
    assert result.exit_code == 0, result.output
    (run,) = _runs(workdir)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["reason"] == (
        "at chance level: the best accuracy 0.1000 is no better than always predicting the largest class '0' (0.1000); "
        "the model learned nothing"
    )
    assert "at chance level" in result.output


def test_a_run_that_learned_says_nothing_of_chance(workdir: Path) -> None:
    result = flow("train", "digits", *TINY, "--epochs", "1")
    assert result.exit_code == 0, result.output
    (run,) = _runs(workdir)
    assert json.loads((run / "summary.json").read_text())["reason"] == ""
    assert "chance" not in result.output


def test_the_submission_check_refuses_non_finite_probabilities() -> None:
    comp = get_competition("digits")
    probs = np.full((6, 10), 0.1, np.float32)
    probs[[1, 4]] = np.nan
    with pytest.raises(FlowError) as info:
        check_probs(comp, probs, 6)
    assert str(info.value) == "probabilities are NaN or infinite for 2 of 6 test images (rows 2, 5): the model diverged"
    probs[[1, 4]] = 0.1
    probs[0, 3] = np.inf
    with pytest.raises(FlowError, match=r"for 1 of 6 test images \(rows 1\)"):
        check_probs(comp, probs, 6)


def test_an_all_nan_probability_file_is_not_submitted(workdir: Path) -> None:
    run = fake_run(workdir / "runs" / "digits", "r1")
    np.save(run.path / "test_probs.npy", np.full((297, 10), np.nan, np.float32))
    line = one_line_error(flow("submit", "digits", "--probs", run.path / "test_probs.npy"))
    assert line == (
        f"Error: {run.path.relative_to(workdir) / 'test_probs.npy'}: probabilities are NaN or infinite for 297 of 297 "
        "test images (rows 1, 2, 3, 4, 5 and 292 more): the model diverged"
    )
    assert not (workdir / "submissions").exists()


# --- Ctrl-C --------------------------------------------------------------------------------------


def _interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_before_the_first_checkpoint_leaves_no_run(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fit, "train_one_epoch", _interrupt)
    line = error_line(flow("train", "digits", *TINY, "--epochs", "2"))
    assert line.startswith("Error: interrupted before the first epoch ended: nothing saved, nothing to resume (runs/digits/")
    assert line.endswith(" removed)")
    assert _runs(workdir) == [] and _temps(workdir) == []
    assert "No runs yet" in flow("runs", "digits").output


def test_ctrl_c_while_the_images_are_cached_leaves_no_run(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kaggle_flow.data import images as data

    monkeypatch.setattr(data, "decode", _interrupt)
    line = error_line(flow("train", "digits", *TINY, "--epochs", "2"))
    assert line.startswith("Error: interrupted before the first epoch ended: nothing saved, nothing to resume")
    assert _runs(workdir) == [] and _temps(workdir) == []


def test_ctrl_c_in_a_later_fold_before_its_checkpoint_keeps_the_finished_folds(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert flow("split", "digits", "--folds", "2").exit_code == 0
    real, calls = fit.train_one_epoch, []

    def second_fold_interrupted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:  # fold 0 has trained its one epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fit, "train_one_epoch", second_fold_interrupted)
    line = error_line(flow("train", "digits", *TINY, "--epochs", "1", "--folds", "all"))
    (run,) = _runs(workdir)
    assert line == f"Error: interrupted; continue with: flow train digits --resume {run.name}"
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["fold0"]  # fold1 had nothing to keep
    monkeypatch.setattr(fit, "train_one_epoch", real)
    resumed = flow("train", "digits", "--resume", run.name)
    assert resumed.exit_code == 0, resumed.output
    assert load_run(run).summary.status == "finished" and len(load_run(run).folds()) == 2


def test_resume_of_a_run_without_a_checkpoint_is_one_line(workdir: Path) -> None:
    run = fake_run(workdir / "runs" / "digits", "r1")
    (run.path / "summary.json").unlink()  # killed (-9) during its first epoch: a config and nothing else
    (run.path / "best.pdparams").unlink()
    line = one_line_error(flow("train", "digits", "--resume", "r1"))
    assert line == (
        f"Error: {run.path.relative_to(workdir)}: no checkpoint to resume (it stopped before its first epoch ended); "
        "start anew: flow train digits"
    )


# --- SIGTERM, as a scheduler sends it ------------------------------------------------------------


def _flow_process(workdir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FLOW_NO_PROGRESS": "1", "PYTHONUNBUFFERED": "1"}
    code = "from kaggle_flow.cli import app; app()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(condition: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_are_handled_like_ctrl_c(workdir: Path, signum: int) -> None:
    """After an epoch: the run is kept and resumable. Before the first one: nothing is left.
    SIGHUP is what closing the terminal sends."""
    proc = _flow_process(workdir, "train", "digits", "--model", "smallcnn", "--size", "16", "--epochs", "40")
    _wait_for(lambda: any((run / "metrics.csv").is_file() for run in _runs(workdir)))
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: interrupted after epoch ") and "Traceback" not in err
    (run,) = _runs(workdir)
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    assert _temps(workdir) == []

    proc = _flow_process(workdir, "train", "digits", "--model", "smallcnn", "--size", "16", "--epochs", "40")
    _wait_for(lambda: len(_runs(workdir)) == 2)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert [line for line in err.splitlines() if line.strip()][-1].startswith("Error: interrupted before the first epoch ended")
    assert _runs(workdir) == [run] and _temps(workdir) == []


def test_a_signal_inside_a_held_block_is_raised_when_the_block_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """What starts paddle's reader thread is not cut in half by SIGTERM; the stop comes right after."""
    from kaggle_flow import machine

    monkeypatch.setattr(machine, "_terminated", False)  # restored after the test: later steps in this process go on
    before = signal.signal(signal.SIGTERM, machine._interrupt)
    finished = False
    try:
        with pytest.raises(KeyboardInterrupt), machine.signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # where the handler would have raised
            finished = True
        assert finished and machine._terminated
        assert signal.getsignal(signal.SIGTERM) is machine._interrupt  # flow's own handler again
    finally:
        signal.signal(signal.SIGTERM, before)


# --- a submission and its ledger row -------------------------------------------------------------


def test_an_interrupted_submit_leaves_neither_the_csv_nor_its_row(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kaggle_flow import fileio

    fake_run(workdir / "runs" / "digits", "r1")
    assert flow("submit", "digits").exit_code == 0
    real_replace = os.replace

    def interrupt_the_csv(src: str, dst: str) -> None:  # Ctrl-C just before the CSV's rename
        if Path(dst).name != "ledger.csv":
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", interrupt_the_csv)
    assert flow("submit", "digits").exit_code == 130  # Ctrl-C's exit code
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    subs = workdir / "submissions" / "digits"
    assert len(read_ledger(subs)) == 1 and len(list(subs.glob("2*.csv"))) == 1
    assert read_ledger(subs)["state"].tolist() == [""]
    assert [p.name for p in subs.iterdir() if p.name.startswith(".")] == []


def test_flow_submissions_reconciles_the_ledger_with_the_folder(workdir: Path) -> None:
    """What a kill -9 can leave: a pending row whose CSV exists, one whose CSV never came, a CSV without a row."""
    run = fake_run(workdir / "runs" / "digits", "r1")
    subs = workdir / "submissions" / "digits"
    subs.mkdir(parents=True)
    written, lost, orphan = "20250101-000000_r1.csv", "20250102-000000_r1.csv", "20250103-000000_r2.csv"
    for name in (written, orphan):
        (subs / name).write_text("id,label\n")
    add_entry(subs, file=subs / written, run=run, cv_score=0.5, state="pending")
    add_entry(subs, file=subs / lost, run=run, state="pending")

    result = flow("submissions", "digits")
    assert result.exit_code == 0, result.output
    assert f"Warning: {written}: written before an interruption; its ledger row is kept" in result.output
    assert f"Warning: {lost}: never written (interrupted); its ledger row is dropped" in result.output
    assert f"Warning: {orphan}: a submission without a ledger row; added (run 'r2', recipe unknown)" in result.output
    ledger = pd.read_csv(subs / "ledger.csv", dtype=str, keep_default_na=False)
    assert ledger["file"].tolist() == [written, orphan]
    assert ledger["run"].tolist() == ["r1", "r2"] and ledger["cv_score"].tolist() == ["0.500000", ""]
    assert ledger["state"].tolist() == ["", ""]
    again = flow("submissions", "digits")
    assert "Warning" not in again.output  # settled once, for good
