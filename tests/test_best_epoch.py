"""The best epoch chosen fairly: the metric first, ties within one image's worth to the lower val loss.

The rule as a pure function on hand-made histories, then whole runs of the tiny competition whose
validation results are forced (the real evaluation, its score and loss replaced), so a saturated
metric is deterministic: the summary, resume and --patience follow the rule.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from tiny_comp import make_tiny

from kaggle_flow.engine import fit, loop, train
from kaggle_flow.errors import TrainingInterrupted
from kaggle_flow.metrics import METRICS, best_of
from kaggle_flow.workspace import open_workspace

# --- the rule ------------------------------------------------------------------------------------------


def test_a_saturated_score_goes_to_the_lowest_val_loss() -> None:
    history = [(1, 0.90, 0.60), (2, 1.0, 0.40), (3, 1.0, 0.30), (4, 1.0, 0.35), (5, 1.0, 0.045), (6, 1.0, 0.05)]
    best = best_of(history, METRICS["auc"], n_val=40)
    assert (best.epoch, best.tied_from) == (5, 2)
    assert best.reason("auc") == "epoch 5: auc 1.0000 tied from epoch 2, lowest val loss 0.0450"


def test_a_difference_below_one_image_is_a_tie() -> None:
    """On 40 images one image is 0.025 of AUC: 0.99 against 1.0 is a tie, which the lower loss wins."""
    history = [(1, 1.0, 0.40), (2, 0.99, 0.20)]
    assert best_of(history, METRICS["auc"], n_val=40).epoch == 2
    assert best_of(history, METRICS["auc"], n_val=1000).epoch == 1  # 1,000 images can show 0.01


def test_a_real_improvement_wins_even_with_a_higher_loss() -> None:
    """Accuracy on 10 images moves by 0.1 an image: 0.3 -> 0.4 is one image more (in floats 0.1 short by a hair)."""
    history = [(1, 0.3, 0.50), (2, 0.4, 0.90), (3, 0.4, 0.95)]
    best = best_of(history, METRICS["accuracy"], n_val=10)
    assert best.epoch == 2
    assert best.reason("accuracy") == "epoch 2: best accuracy 0.4000"


def test_lower_is_better_metrics_and_continuous_scores() -> None:
    """Log loss is continuous: any lower score wins; only an equal one is a tie."""
    history = [(1, 0.30, 0.30), (2, 0.2999, 0.2999), (3, 0.2999, 0.29), (4, 0.31, 0.01)]
    best = best_of(history, METRICS["logloss"], n_val=10)
    assert (best.epoch, best.tied_from) == (3, 2)


# --- whole runs -------------------------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path, metric="accuracy")
    return tmp_path


def _forced(monkeypatch: pytest.MonkeyPatch, results: list[tuple[float, float]]) -> None:
    """Each epoch's validation scored as `results[epoch - 1]` (score, val loss); the rest as evaluated."""
    real, calls = loop.evaluate, []

    def evaluate(*args: object, **kwargs: object) -> object:
        calls.append(1)
        score, loss = results[len(calls) - 1]
        return dataclasses.replace(real(*args, **kwargs), metric=score, loss=loss)

    monkeypatch.setattr(fit, "evaluate", evaluate)


SATURATED = [(0.5, 1.0), (1.0, 0.5), (1.0, 0.4), (1.0, 0.3), (1.0, 0.2)]


def test_a_run_whose_metric_saturates_early_keeps_a_later_epoch(tiny: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _forced(monkeypatch, SATURATED)
    run = train.train(open_workspace("tiny"), {"epochs": 5})
    summary = json.loads(run.summary_file.read_text())
    assert (summary["best_epoch"], summary["best_score"], summary["best_loss"]) == (5, 1.0, 0.2)
    assert summary["best_reason"] == "epoch 5: accuracy 1.0000 tied from epoch 2, lowest val loss 0.2000"
    assert "\nBest epoch 5: accuracy 1.0000 tied from epoch 2, lowest val loss 0.2000\n" in capsys.readouterr().out


def test_patience_counts_epochs_without_a_new_best_under_the_rule(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A saturated score with a falling loss is a new best every epoch: patience 2 never stops it."""
    _forced(monkeypatch, SATURATED)
    run = train.train(open_workspace("tiny"), {"epochs": 5, "patience": 2})
    assert (run.summary.status, run.summary.epochs_done) == ("finished", 5)
    _forced(monkeypatch, [(0.5, 1.0), (1.0, 0.5), (1.0, 0.6), (1.0, 0.7), (1.0, 0.1)])
    stopped = train.train(open_workspace("tiny"), {"epochs": 5, "patience": 2})
    assert (stopped.summary.status, stopped.summary.epochs_done, stopped.summary.best_epoch) == ("stopped early", 4, 2)


def test_resume_keeps_the_best_epochs_val_loss(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Best epoch 2 (loss 0.3) before the interruption; epochs 3 and 4 tie with higher losses after it.
    A resumed run that forgot 0.3 would take epoch 3, then 4."""
    ws = open_workspace("tiny")
    _forced(monkeypatch, [(0.5, 1.0), (1.0, 0.3), (1.0, 0.4), (1.0, 0.35)])

    def stop_after_two(epoch: int, row: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train.train(ws, {"epochs": 4}, on_epoch_end=stop_after_two)
    (folder,) = [p for p in ws.runs_dir.iterdir() if (p / "config.json").is_file()]
    _forced(monkeypatch, [(1.0, 0.4), (1.0, 0.35)])
    run = train.train(ws, resume=folder.name)
    assert (run.summary.best_epoch, run.summary.best_loss, run.summary.epochs_done) == (2, 0.3, 4)
    assert run.summary.best_reason == "epoch 2: best accuracy 1.0000"
