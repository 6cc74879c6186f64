"""Metrics on known answers, scoring by id, and the ledger."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kaggle_flow.competition import get_competition
from kaggle_flow.errors import FlowError, NotFoundError
from kaggle_flow.submit.ledger import (
    add_entry,
    ledger_file,
    read_ledger,
    recipe_summary,
    set_local_score,
)
from kaggle_flow.metrics import METRICS
from kaggle_flow.submit.score import newest_submission, score_submission

Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 2, 0, 2])

KNOWN = {
    "accuracy": 6 / 8,
    # F1 per class: 0: p=1/2 r=1/2 -> 1/2 ; 1: p=2/3 r=1 -> 4/5 ; 2: p=1 r=3/4 -> 6/7
    "macro_f1": (1 / 2 + 4 / 5 + 6 / 7) / 3,
    "balanced_accuracy": (1 / 2 + 1 + 3 / 4) / 3,
}


def quadratic_kappa(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    """The textbook formula, written out."""
    observed = np.zeros((k, k))
    for t, p in zip(y_true, y_pred):
        observed[t, p] += 1
    weights = np.array([[(i - j) ** 2 / (k - 1) ** 2 for j in range(k)] for i in range(k)])
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    return 1 - (weights * observed).sum() / (weights * expected).sum()


def test_registry_is_complete() -> None:
    assert list(METRICS) == ["accuracy", "macro_f1", "balanced_accuracy", "kappa"]
    for metric in METRICS.values():
        assert metric.description


@pytest.mark.parametrize("name", list(METRICS))
def test_metric_known_answer(name: str) -> None:
    want = KNOWN.get(name) if name != "kappa" else quadratic_kappa(Y_TRUE, Y_PRED, 3)
    assert METRICS[name](Y_TRUE, Y_PRED, 3) == pytest.approx(want)
    assert METRICS[name](Y_TRUE, Y_TRUE, 3) == pytest.approx(1.0)


def test_kappa_counts_distance() -> None:
    kappa = METRICS["kappa"]
    near = kappa(np.array([0, 1, 2, 3] * 3), np.array([1, 1, 2, 3] * 3), 4)
    far = kappa(np.array([0, 1, 2, 3] * 3), np.array([3, 1, 2, 3] * 3), 4)
    assert near > far


def test_unknown_metric() -> None:
    with pytest.raises(NotFoundError, match=r"unknown metric 'auc' \(valid: accuracy, macro_f1, balanced_accuracy, kappa\)"):
        METRICS["auc"]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_score_matches_by_id(tmp_path: Path) -> None:
    comp = get_competition("digits")
    sol = write(tmp_path / "solution.csv", "id,label\na.png,1\nb.png,2\nc.png,3\nd.png,4\n")
    sub = write(tmp_path / "sub.csv", "id,label\nd.png,4\nc.png,0\nb.png,2\na.png,1\n")
    assert score_submission(comp, sub, sol) == pytest.approx(0.75)
    assert score_submission(comp, sub, sol, metric="balanced_accuracy") == pytest.approx(0.75)


def test_score_with_class_names(tmp_path: Path) -> None:
    comp = get_competition("zodiac")
    sol = write(tmp_path / "solution.csv", "id,label\na.jpg,ox\nb.jpg,pig\n")
    sub = write(tmp_path / "sub.csv", "id,label\na.jpg,ox\nb.jpg,dog\n")
    assert score_submission(comp, sub, sol) == pytest.approx(0.5)


def test_score_missing_and_extra_ids(tmp_path: Path) -> None:
    comp = get_competition("digits")
    sol = write(tmp_path / "solution.csv", "id,label\na.png,1\nb.png,2\n")
    sub = write(tmp_path / "sub.csv", "id,label\na.png,1\n")
    with pytest.raises(FlowError) as exc:
        score_submission(comp, sub, sol)
    assert str(exc.value) == f"{sub}: id 'b.png' of {sol} has no row (1 missing)"
    sub = write(tmp_path / "sub.csv", "id,label\na.png,1\nb.png,2\nz.png,2\n")
    with pytest.raises(FlowError) as exc:
        score_submission(comp, sub, sol)
    assert str(exc.value) == f"{sub} line 4: id 'z.png' is not in {sol}"
    sub = write(tmp_path / "sub.csv", "id,label\na.png,1\nb.png,12\n")
    with pytest.raises(FlowError) as exc:
        score_submission(comp, sub, sol)
    assert str(exc.value) == f"{sub} line 3: label '12' is not a class"


def test_newest_submission(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no submissions yet"):
        newest_submission(tmp_path)
    for name in ("20250101-000000_a.csv", "20250102-000000_b.csv", "ledger.csv"):
        (tmp_path / name).write_text("id,label\n")
    assert newest_submission(tmp_path).name == "20250102-000000_b.csv"


def test_ledger_rows(tmp_path: Path) -> None:
    from clitools import fake_run

    assert read_ledger(tmp_path).empty
    run = fake_run(tmp_path / "runs", "r1")
    assert recipe_summary(run.config) == {"model": "smallcnn", "epochs": "1", "lr": "0.003", "batch_size": "64", "preset": "affine"}
    add_entry(tmp_path, file=tmp_path / "20250101-000000_r1.csv", run=run, cv_score=0.9, when=0)
    add_entry(tmp_path, file=tmp_path / "20250102-000000_r2.csv", run="r2", tta=True)  # probabilities outside a run
    assert set_local_score(tmp_path, tmp_path / "20250101-000000_r1.csv", 0.875)
    assert not set_local_score(tmp_path, tmp_path / "nope.csv", 0.5)
    ledger = pd.read_csv(ledger_file(tmp_path), dtype=str, keep_default_na=False)
    assert ledger["file"].tolist() == ["20250101-000000_r1.csv", "20250102-000000_r2.csv"]
    assert ledger["run"].tolist() == ["r1", "r2"] and ledger["kind"].tolist() == ["single", ""]
    assert ledger["model"].tolist() == ["smallcnn", ""]
    assert ledger["cv_score"].tolist() == ["0.900000", ""]
    assert ledger["local_score"].tolist() == ["0.875000", ""]
    assert ledger["tta"].tolist() == ["no", "yes"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_ledger_from_before_the_kind_column(tmp_path: Path) -> None:
    ledger_file(tmp_path).write_text(
        "time,file,run,model,epochs,lr,batch_size,preset,tta,cv_score,local_score\n"
        "2025-01-01 00:00:00,20250101-000000_r1.csv,r1,smallcnn,2,0.003,64,affine,no,0.900000,\n"
    )
    add_entry(tmp_path, file=tmp_path / "20250102-000000_r2.csv", run="r2")
    ledger = read_ledger(tmp_path)
    assert list(ledger.columns[:4]) == ["time", "file", "run", "kind"]
    assert ledger["kind"].tolist() == ["", ""] and ledger["model"].tolist() == ["smallcnn", ""]
