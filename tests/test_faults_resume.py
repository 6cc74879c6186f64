"""Faults around a run's checkpoints: damaged files on --resume, recipe flags beside --resume, and a
full disk before and after the first checkpoint. Each ends in one line; nothing half made stays."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import paddle
import pandas as pd
import pytest
from clitools import ctrl_c_in_second_epoch, flow, one_line_error

from kaggle_flow.engine import fit
from kaggle_flow.runs import load_run

TINY = ("--model", "smallcnn", "--size", "8")
LAST = ("last.pdparams", "last.pdopt", "last.pdstate")


def _runs(workdir: Path) -> list[Path]:
    folder = workdir / "runs" / "digits"
    return sorted(p for p in folder.iterdir() if (p / "config.json").is_file()) if folder.is_dir() else []


def _interrupted_after_one_epoch(workdir: Path, monkeypatch: pytest.MonkeyPatch, *flags: str) -> Path:
    """A 2-epoch run stopped by Ctrl-C during its second epoch: one checkpoint, resumable."""
    real = ctrl_c_in_second_epoch(monkeypatch)
    result = flow("train", "digits", *TINY, "--epochs", "2", *flags)
    assert result.exit_code == 1 and "interrupted after epoch 1 of 2" in result.output, result.output
    monkeypatch.setattr(fit, "train_one_epoch", real)
    (run,) = _runs(workdir)
    return run


def test_a_damaged_last_checkpoint_is_one_line_naming_the_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _interrupted_after_one_epoch(workdir, monkeypatch)
    for name in LAST:
        whole = (run / name).read_bytes()
        for damaged in (whole[: len(whole) // 2], b""):  # truncated, empty
            (run / name).write_bytes(damaged)
            assert one_line_error(flow("train", "digits", "--resume", run.name)) == (
                f"Error: runs/digits/{run.name}/{name}: cannot be read (truncated or damaged); "
                "the run cannot resume: start anew with flow train digits"
            )
        (run / name).write_bytes(whole)
    resumed = flow("train", "digits", "--resume", run.name)
    assert resumed.exit_code == 0, resumed.output
    assert load_run(run).summary.status == "finished"


def test_a_last_state_whose_ema_weights_do_not_fit_is_one_line(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _interrupted_after_one_epoch(workdir, monkeypatch, "--ema", "0.9")
    path = run / "last.pdstate"
    saved = paddle.load(str(path))
    shadow = saved["ema"]["shadow"]
    first = next(iter(shadow))
    start = f"Error: runs/digits/{run.name}/last.pdstate: holds "
    end = "; the run cannot resume: start anew with flow train digits"
    for ema, why in (
        (None, "no EMA weights (the run averages them: --ema 0.9)"),
        ({"shadow": shadow}, "no EMA weights (the run averages them: --ema 0.9)"),
        ({"updates": 3, "shadow": {k: v for k, v in shadow.items() if k != first}}, f"EMA weights that do not match the model: {first}"),
        ({"updates": 3, "shadow": {**shadow, first: np.zeros(3, dtype="float32")}},
         f"the EMA weight {first} of shape [3] where the model's is {list(shadow[first].shape)}"),
    ):
        paddle.save({**saved, "ema": ema}, str(path))
        assert one_line_error(flow("train", "digits", "--resume", run.name)) == start + why + end
    paddle.save(saved, str(path))
    assert flow("train", "digits", "--resume", run.name).exit_code == 0


def test_recipe_flags_beside_resume_are_refused_and_it_goes_on_from_the_checkpoint(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _interrupted_after_one_epoch(workdir, monkeypatch)
    assert one_line_error(flow("train", "digits", "--resume", run.name, "--lr", "0.5", "--epochs", "9")) == (
        f"Error: --resume continues {run.name} with its own settings; --epochs, --lr cannot change it"
    )
    assert one_line_error(flow("train", "digits", "--resume", run.name, "--size", "16", "--amp")) == (
        f"Error: --resume continues {run.name} with its own settings; --size, --amp cannot change it"
    )
    real, epochs = fit._train_epoch, []

    def counted(state: object, data: object, reporter: object, epoch: int) -> object:
        epochs.append(epoch)
        return real(state, data, reporter, epoch)  # type: ignore[arg-type]

    monkeypatch.setattr(fit, "_train_epoch", counted)
    resumed = flow("train", "digits", "--resume", run.name, "--nproc", "1")  # how many processes: as it was
    assert resumed.exit_code == 0, resumed.output
    assert "Continuing after epoch 1 of 2" in resumed.output
    # the counter goes on from the checkpoint: epoch 2 alone is trained, metrics.csv has epochs 1 and 2 once each
    assert epochs == [2]
    assert pd.read_csv(run / "metrics.csv")["epoch"].tolist() == [1, 2]
    summary = load_run(run).summary
    assert (summary.status, summary.epochs_done) == ("finished", 2)


def _full_disk_from(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """From epoch `epoch` on, the run folders' disk has 1 kB free (the image cache and folds are written before)."""
    real_usage, real_epoch, calls = shutil.disk_usage, fit.train_one_epoch, []

    def disk_usage(path: str | os.PathLike[str]) -> object:
        usage = real_usage(path)
        return usage._replace(free=1000) if len(calls) >= epoch and "-smallcnn-f0" in str(path) else usage

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    monkeypatch.setattr(fit, "train_one_epoch", counted)


def test_a_full_disk_before_the_first_checkpoint_leaves_no_run(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _full_disk_from(monkeypatch, epoch=1)
    line = one_line_error_after_progress(flow("train", "digits", *TINY, "--epochs", "2"))
    assert line.startswith("Error: not enough free space in runs/digits/") and line.endswith(" short)")
    assert _runs(workdir) == [] and not list((workdir / "runs/digits").glob("*-smallcnn-f0"))
    assert "No runs yet" in flow("runs", "digits").output


def test_a_full_disk_after_a_checkpoint_says_how_to_continue(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _full_disk_from(monkeypatch, epoch=2)
    result = flow("train", "digits", *TINY, "--epochs", "2")
    line = one_line_error_after_progress(result)
    (run,) = _runs(workdir)
    assert line.startswith(f"Error: not enough free space in runs/digits/{run.name} for the checkpoint ")
    assert line.endswith(f"; once there is room, continue with: flow train digits --resume {run.name}")
    monkeypatch.undo()
    monkeypatch.chdir(workdir)
    resumed = flow("train", "digits", "--resume", run.name)
    assert resumed.exit_code == 0, resumed.output
    assert load_run(run).summary.status == "finished"


def one_line_error_after_progress(result: object) -> str:
    """The last line of a failed training: exit 1, one `Error:` line, no traceback (epoch lines may come before)."""
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    output = result.output  # type: ignore[attr-defined]
    assert "Traceback" not in output and output.count("Error: ") == 1, output
    return [line for line in output.splitlines() if line.strip()][-1]


def test_a_closed_stdout_before_the_first_checkpoint_leaves_no_run(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`flow train | head -3`: the pipe closes while the first epoch runs; no empty run folder stays."""

    def closed(*args: object, **kwargs: object) -> object:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(fit, "train_one_epoch", closed)
    result = flow("train", "digits", *TINY, "--epochs", "2")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert _runs(workdir) == [] and not list((workdir / "runs/digits").glob("*-smallcnn-f0"))
