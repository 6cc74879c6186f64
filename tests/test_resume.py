"""`flow train --resume` continues bit for bit: a run stopped after an epoch and resumed ends with the
weights, metrics and out-of-fold predictions of the same run never stopped, with every random draw
on (dropout, augmentation with flips and erasing, mixup and cutmix, label shuffling, EMA, 2 loader
workers). No generator state is saved: each epoch reseeds everything from (seed, epoch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest
from tiny_comp import make_tiny

from kaggle_flow.engine import train
from kaggle_flow.errors import TrainingInterrupted
from kaggle_flow.runs import Run, load_run
from kaggle_flow.workspace import open_workspace

RANDOM = {"epochs": 3, "seed": 5, "preset": "medium", "erasing": 0.5, "mixup": 0.3, "cutmix": 0.3, "balance": True,
          "ema": 0.9, "workers": 2}


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path)
    return tmp_path


def _stopped_after(ws, epoch: int) -> Run:  # type: ignore[no-untyped-def]
    def stop(done: int, row: dict) -> None:
        if done == epoch:
            raise KeyboardInterrupt

    before = set(ws.runs_dir.iterdir()) if ws.runs_dir.is_dir() else set()
    with pytest.raises(TrainingInterrupted, match=f"^interrupted after epoch {epoch} of 3"):
        train.train(ws, RANDOM, on_epoch_end=stop)
    (path,) = [p for p in set(ws.runs_dir.iterdir()) - before if (p / "config.json").is_file()]
    return load_run(path)


def _weights(path: Path) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in paddle.load(str(path)).items()}


def test_a_resumed_run_ends_with_the_weights_of_the_run_never_stopped(tiny: Path) -> None:
    ws = open_workspace("tiny")
    whole = train.train(ws, RANDOM)
    stopped = _stopped_after(ws, 1)
    assert "rng" not in paddle.load(str(stopped.last_state))  # nothing of a generator to restore
    resumed = train.train(ws, resume=stopped.name)
    assert resumed.path == stopped.path and resumed.summary.epochs_done == 3
    for name in ("last.pdparams", "best.pdparams"):
        a, b = _weights(whole.path / name), _weights(stopped.path / name)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name
    assert stopped.metrics_file.read_text() == whole.metrics_file.read_text()
    assert stopped.oof.read_text() == whole.oof.read_text()


def test_a_checkpoint_of_an_older_flow_with_generator_state_still_resumes(tiny: Path) -> None:
    ws = open_workspace("tiny")
    stopped = _stopped_after(ws, 2)
    saved = paddle.load(str(stopped.last_state))
    paddle.save({**saved, "rng": [(0, 5, 123)]}, str(stopped.last_state))  # as flow wrote it before: read, not used
    assert train.train(ws, resume=stopped.name).summary.epochs_done == 3
