"""Transfer learning: --init-from an earlier run of any competition, and the automatic recipe's ImageNet start.

No network: paddle's weights cache is a temp folder holding weights files paddle itself saved, and
the check for a network is replaced by one that fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest
from tiny_comp import make_tiny

from clitools import fake_run, flow, one_line_error
from kaggle_flow.runs import all_runs

# --- --init-from: the weights of an earlier run, any competition -------------------------------------


def test_init_from_a_run_of_another_competition_replaces_the_head(workdir: Path) -> None:
    digits = flow("train", "digits", "--epochs", "1", "--model", "smallcnn")
    assert digits.exit_code == 0, digits.output
    source = all_runs(Path("runs/digits"))[-1]
    make_tiny(workdir)
    result = flow("train", "tiny", "--epochs", "1", "--lr", "1e-9", "--init-from", source.id)
    assert result.exit_code == 0, result.output
    assert f"Starting from the weights of {source.path} (digits, smallcnn, 10 classes)" in result.output
    assert (f"Warning: {source.best}: classifier head of another class count; fc.weight, fc.bias left freshly "
            "initialized") in result.output
    run = all_runs(workdir / "runs/tiny")[-1]
    recorded = json.loads(run.config_file.read_text())
    assert recorded["init_from"] == str(source.path) and recorded["weights"] == str(source.best)
    start, after = paddle.load(str(source.best)), paddle.load(str(run.last))
    convs = [k for k in start if k.endswith(".weight") and np.asarray(start[k]).ndim == 4]
    assert convs
    for key in convs:  # every convolution starts from the digits run (a rate of 1e-9 moves nothing)
        np.testing.assert_allclose(np.asarray(after[key]), np.asarray(start[key]), atol=1e-6, err_msg=key)
    assert list(np.asarray(after["fc.weight"]).shape)[-1] == 3
    # a run folder path works as well as its id
    again = flow("train", "tiny", "--epochs", "1", "--init-from", source.path)
    assert again.exit_code == 0, again.output


def test_init_from_refuses_bad_sources_in_one_line(workdir: Path) -> None:
    make_tiny(workdir)
    (workdir / "competitions" / "rgb.toml").write_text(
        (workdir / "competitions" / "tiny.toml").read_text().replace("channels = 1\nmean = [0.5]\nstd = [0.25]",
                                                                       "channels = 3\nmean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]"))
    (workdir / "data" / "rgb").symlink_to(workdir / "data" / "tiny", target_is_directory=True)
    grey = fake_run(workdir / "runs/digits", "grey")
    assert one_line_error(flow("train", "tiny", "--init-from", "grey", "--model", "resnet-t")) == (
        "Error: --init-from grey: a smallcnn run, and this run trains resnet-t: give --model smallcnn or a resnet-t run")
    assert one_line_error(flow("train", "rgb", "--init-from", "grey")) == (
        "Error: --init-from grey: smallcnn trained on 1-channel (grey) images, and rgb's have 3 (RGB): grey filters "
        "hold no colour; pick a run of RGB images")
    grey.best.unlink()
    assert one_line_error(flow("train", "tiny", "--init-from", "grey")) == (
        f"Error: --init-from grey: no weights to start from ({grey.best.relative_to(workdir)} missing, or the run failed)")
    assert one_line_error(flow("train", "tiny", "--init-from", "nope")) == (
        "Error: --init-from nope: no such run (neither a run folder nor a run id under runs/*/)")
    assert one_line_error(flow("train", "tiny", "--init-from", "grey", "--weights", "x.pdparams")) == (
        "Error: --init-from and --weights both name the weights to start from: give one")
