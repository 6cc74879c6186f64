"""Weights and checkpoint files from elsewhere: a pickle that would run a command is refused before it
runs, and weights of another model (or of a wrong shape) are refused instead of loading in part.

Every path that reads such a file is driven through the CLI: `flow weights add`, `flow train --weights`,
`--init-from`, `--resume`, `flow submit --run`, `flow predict`, `flow export`.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pytest
from clitools import fake_run, flow, one_line_error
from test_faults_resume import _interrupted_after_one_epoch

from kaggle_flow import models
from kaggle_flow.models.state_file import read_state

TINY = ("--model", "smallcnn", "--size", "8", "--epochs", "1")
REFUSED = "refused to load 'posix.system' (weights hold only arrays and numbers)"


class RunsCommand:
    """An object whose unpickling runs `touch MARKER`: what a booby-trapped weights file holds."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _booby_trap(file: Path, marker: Path, base: dict[str, Any] | None = None) -> None:
    """Rewrite `file` as a pickled dict whose first value runs a command when unpickled."""
    state = {"conv": RunsCommand(marker), **(base or {})}
    with file.open("wb") as stream:
        pickle.dump(state, stream, protocol=4)


def _last_line_error(result: Any) -> str:
    """The error line that ends a command's output (`flow train --init-from` says what it starts from first)."""
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.count("Error: ") == 1, result.output
    return result.output.strip().splitlines()[-1]


# --- case 2: a pickle that runs code -----------------------------------------------------------------


def test_weights_add_refuses_a_pickle_that_runs_a_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    _booby_trap(tmp_path / "evil.pdparams", marker)
    assert one_line_error(flow("weights", "add", "resnet18", "evil.pdparams")) == f"Error: evil.pdparams: {REFUSED}"
    assert not marker.exists()


def test_train_weights_and_init_from_refuse_a_pickle_that_runs_a_command(workdir: Path) -> None:
    marker = workdir / "MARKER"
    source = fake_run(workdir / "runs/digits", "src")
    _booby_trap(source.best, marker)
    assert _last_line_error(flow("train", "digits", *TINY, "--weights", "runs/digits/src/best.pdparams")) == (
        f"Error: runs/digits/src/best.pdparams: {REFUSED}")
    assert _last_line_error(flow("train", "digits", *TINY, "--init-from", "src")) == (
        f"Error: runs/digits/src/best.pdparams: {REFUSED}")
    assert not marker.exists()


def test_resume_refuses_a_checkpoint_that_runs_a_command(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _interrupted_after_one_epoch(workdir, monkeypatch)
    marker = workdir / "MARKER"
    for name in ("last.pdstate", "last.pdparams", "last.pdopt"):
        whole = (run / name).read_bytes()
        _booby_trap(run / name, marker)
        assert one_line_error(flow("train", "digits", "--resume", run.name)) == (
            f"Error: runs/digits/{run.name}/{name}: {REFUSED}"), name
        assert not marker.exists(), name
        (run / name).write_bytes(whole)
    resumed = flow("train", "digits", "--resume", run.name)  # flow's own checkpoints still load
    assert resumed.exit_code == 0, resumed.output


def test_submit_predict_and_export_refuse_a_pickle_that_runs_a_command(workdir: Path) -> None:
    run = fake_run(workdir / "runs/digits", "r1")
    marker = workdir / "MARKER"
    _booby_trap(run.best, marker, {k: v.numpy() for k, v in models.create_model("smallcnn", 10, 1).state_dict().items()})
    for command in (("submit", "digits", "--run", "r1"), ("predict", "digits", "--run", "r1"), ("export", "r1", "--comp", "digits")):
        assert one_line_error(flow(*command)) == f"Error: runs/digits/r1/best.pdparams: {REFUSED}", command
    assert not marker.exists()
    assert not (workdir / "submissions/digits").exists() or not list((workdir / "submissions/digits").glob("*.csv"))


def test_the_loader_reads_what_paddle_saves_in_every_form(tmp_path: Path) -> None:
    """paddle.save of a state dict (protocols 2 and 4), of tensors outside one, and a model-zoo dict of numpy arrays."""
    model = models.create_model("smallcnn", 10, 1)
    arrays = {k: v.numpy() for k, v in model.state_dict().items()}
    forms = {
        "p4.pdparams": model.state_dict(), "p2.pdparams": model.state_dict(),
        "nested.pdopt": {"slots": model.state_dict(), "LR_Scheduler": {"last_epoch": 3, "last_lr": 0.1}},
    }
    for name, obj in forms.items():
        paddle.save(obj, str(tmp_path / name), protocol=2 if name.startswith("p2") else 4)
    with (tmp_path / "zoo.pdparams").open("wb") as stream:
        pickle.dump(arrays, stream, protocol=2)
    for name in ("p4.pdparams", "p2.pdparams", "zoo.pdparams"):
        loaded = read_state(tmp_path / name)
        assert list(loaded) == list(arrays), name
        for key, value in arrays.items():
            np.testing.assert_array_equal(loaded[key], value, err_msg=f"{name} {key}")
    nested = read_state(tmp_path / "nested.pdopt")
    assert nested["LR_Scheduler"] == {"last_epoch": 3, "last_lr": 0.1}
    np.testing.assert_array_equal(nested["slots"]["fc.weight"], arrays["fc.weight"])


# --- case 3: weights of another model --------------------------------------------------------------


def test_submit_and_export_refuse_weights_of_another_shape(workdir: Path) -> None:
    """A best.pdparams of a 4-class smallcnn in a 10-class run: no submission from untrained layers."""
    run = fake_run(workdir / "runs/digits", "r1")
    paddle.save(models.create_model("smallcnn", 4, 1).state_dict(), str(run.best))
    expected = ("Error: runs/digits/r1/best.pdparams: does not fit the run's smallcnn (10 classes): "
                "first mismatched key 'fc.weight' [128, 4] vs [128, 10]")
    for command in (("submit", "digits", "--run", "r1"), ("export", "r1", "--comp", "digits")):
        assert one_line_error(flow(*command)) == expected, command
    paddle.save(models.create_model("lenet", 10, 1).state_dict(), str(run.best))
    assert one_line_error(flow("predict", "digits", "--run", "r1")).startswith(
        "Error: runs/digits/r1/best.pdparams: does not fit the run's smallcnn (10 classes): first mismatched key ")
    assert not (workdir / "submissions/digits").exists() or not list((workdir / "submissions/digits").glob("*.csv"))


def test_resume_refuses_weights_of_another_shape(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _interrupted_after_one_epoch(workdir, monkeypatch)
    state = paddle.load(str(run / "last.pdparams"))
    state["extra.weight"] = paddle.zeros([2])
    paddle.save(state, str(run / "last.pdparams"))
    assert _last_line_error(flow("train", "digits", "--resume", run.name)) == (
        f"Error: runs/digits/{run.name}/last.pdparams: does not fit the run's smallcnn (10 classes): "
        "first mismatched key 'extra.weight' (not in the model)")


def test_init_from_keeps_the_head_free_and_checks_the_rest(workdir: Path) -> None:
    source = fake_run(workdir / "runs/digits", "src")
    state = paddle.load(str(source.best))
    state["features.2.0.weight"] = paddle.zeros([32, 5, 3, 3])
    paddle.save(state, str(source.best))
    line = _last_line_error(flow("train", "digits", *TINY, "--init-from", "src"))
    assert line == ("Error: runs/digits/src/best.pdparams: does not fit smallcnn: first mismatched key "
                    "'features.2.0.weight' [32, 5, 3, 3] vs [32, 16, 3, 3]")
