"""A metric where lower is better (log loss) drives training the right way: the best epoch is the
lowest, the run's score is that one, `flow runs` and the choice of the best run follow it too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_comp import make_tiny

from kaggle_flow.engine import train
from kaggle_flow.metrics import METRICS
from kaggle_flow.runs import resolve_run
from kaggle_flow.workspace import open_workspace


@pytest.fixture
def logloss_comp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path, metric="logloss")
    toml = tmp_path / "competitions" / "tiny.toml"
    toml.write_text(toml.read_text() + '\n[submission]\nkind = "probabilities"\n')
    return tmp_path


def test_the_best_epoch_is_the_lowest_log_loss(logloss_comp: Path) -> None:
    ws = open_workspace("tiny")
    run = train.train(ws, {"epochs": 3, "lr": 0.05})
    history = pd.read_csv(run.metrics_file)
    lowest = int(history["val_metric"].idxmin())
    assert run.summary.best_epoch == int(history["epoch"][lowest])
    assert run.summary.best_score == pytest.approx(float(history["val_metric"].min()))
    oof = pd.read_csv(run.oof)
    probs = oof[[f"prob_{j}" for j in range(3)]].to_numpy()
    assert METRICS["logloss"](oof["label"].to_numpy(), probs) == pytest.approx(run.summary.best_score, rel=1e-4)


def test_the_best_run_has_the_lowest_log_loss(logloss_comp: Path) -> None:
    ws = open_workspace("tiny")
    good = train.train(ws, {"epochs": 2, "seed": 1})
    poor = train.train(ws, {"epochs": 1, "lr": 1e-5, "seed": 2})  # hardly moves from its start
    assert poor.summary.best_score > good.summary.best_score  # log loss: the poor run's is higher
    assert resolve_run(ws, "best").path == good.path
    assert np.isfinite(good.summary.best_score)
