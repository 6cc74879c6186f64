"""Metrics on hand-made cases against their known answers and scikit-learn, scoring by id, and the ledger."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kaggle_flow.competition import get_competition
from kaggle_flow.errors import FlowError, NotFoundError
from kaggle_flow.metrics import METRICS
from kaggle_flow.submit.ledger import (
    add_entry,
    ledger_file,
    read_ledger,
    recipe_summary,
    set_local_score,
)
from kaggle_flow.submit.score import newest_submission, score_submission


def quadratic_kappa(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    """The textbook formula, written out."""
    observed = np.zeros((k, k))
    for t, p in zip(y_true, y_pred):
        observed[t, p] += 1
    weights = np.array([[(i - j) ** 2 / (k - 1) ** 2 for j in range(k)] for i in range(k)])
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    return 1 - (weights * observed).sum() / (weights * expected).sum()


def _sklearn(name: str) -> Callable[[np.ndarray, np.ndarray, int], float]:
    """scikit-learn's own function for a metric, called the plain way; a new metric needs one here."""
    from sklearn import metrics as skm

    references = {
        "accuracy": lambda t, p, k: skm.accuracy_score(t, p),
        "macro_f1": lambda t, p, k: skm.f1_score(t, p, average="macro", zero_division=0),
        "balanced_accuracy": lambda t, p, k: skm.balanced_accuracy_score(t, p),
        "kappa": lambda t, p, k: skm.cohen_kappa_score(t, p, labels=list(range(k)), weights="quadratic"),
    }
    if name not in references:
        pytest.fail(f"metric '{name}' has no scikit-learn reference in tests/test_score.py: add one, and its known answers to CASES")
    return references[name]


def _case(y_true: list[int], y_pred: list[int], k: int, **known: float) -> tuple[np.ndarray, np.ndarray, int, dict[str, float]]:
    return np.array(y_true), np.array(y_pred), k, known


CASES = {  # y_true, y_pred, number of classes, the answer worked out by hand for each metric
    "three classes": _case(
        [0, 0, 1, 1, 2, 2, 2, 2], [0, 1, 1, 1, 2, 2, 0, 2], 3,
        accuracy=6 / 8,
        macro_f1=(1 / 2 + 4 / 5 + 6 / 7) / 3,  # F1 per class: p=1/2 r=1/2 ; p=2/3 r=1 ; p=1 r=3/4
        balanced_accuracy=(1 / 2 + 1 + 3 / 4) / 3,
        kappa=quadratic_kappa(np.array([0, 0, 1, 1, 2, 2, 2, 2]), np.array([0, 1, 1, 1, 2, 2, 0, 2]), 3),
    ),
    "a class in neither": _case(  # class 3 of 4 never occurs: it adds no meaningless 0 to the averages
        [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], 4,
        accuracy=4 / 6,
        macro_f1=(1 / 2 + 4 / 5 + 2 / 3) / 3,  # p=1/2 r=1/2 ; p=2/3 r=1 ; p=1 r=1/2
        balanced_accuracy=(1 / 2 + 1 + 1 / 2) / 3,
        kappa=quadratic_kappa(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0]), 4),
    ),
    "a class only predicted": _case(  # class 2 is predicted once and never true
        [0, 0, 1, 1], [0, 2, 1, 1], 3,
        accuracy=3 / 4,
        macro_f1=(2 / 3 + 1 + 0) / 3,  # p=1 r=1/2 ; p=1 r=1 ; class 2 has F1 0
        balanced_accuracy=(1 / 2 + 1) / 2,  # recall of the classes that are true
        kappa=quadratic_kappa(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]), 3),
    ),
    "one class everywhere": _case(  # perfect agreement; scikit-learn's kappa is undefined (nan) here
        [2, 2, 2, 2], [2, 2, 2, 2], 3, accuracy=1.0, macro_f1=1.0, balanced_accuracy=1.0, kappa=1.0,
    ),
    "all right": _case([0, 1, 2, 3, 3, 2], [0, 1, 2, 3, 3, 2], 4, accuracy=1.0, macro_f1=1.0, balanced_accuracy=1.0, kappa=1.0),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", list(METRICS))
def test_metric_gives_the_known_answer_and_agrees_with_scikit_learn(name: str, case: str) -> None:
    y_true, y_pred, k, known = CASES[case]
    reference = _sklearn(name)
    if name not in known:
        pytest.fail(f"metric '{name}' has no known answer for the case '{case}' in tests/test_score.py")
    value = METRICS[name](y_true, y_pred, k)
    assert value == pytest.approx(known[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns on the absent and the single classes
        expected = reference(y_true, y_pred, k)
    if np.isnan(expected):  # undefined for scikit-learn: the known answer above is the metric's own
        assert case == "one class everywhere" and name == "kappa"
    else:
        assert value == pytest.approx(expected)


@pytest.mark.parametrize("name", list(METRICS))
def test_better_predictions_score_higher(name: str) -> None:
    y_true = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    one_wrong = y_true.copy()
    one_wrong[11] = 2
    four_wrong = one_wrong.copy()
    four_wrong[[0, 3, 6]] = [3, 3, 0]
    metric = METRICS[name]
    assert metric(y_true, y_true, 4) == pytest.approx(1.0)
    assert metric(y_true, y_true, 4) > metric(y_true, one_wrong, 4) > metric(y_true, four_wrong, 4)


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_says_what_it_measures(name: str) -> None:
    assert METRICS[name].description and METRICS[name].name == name


def test_kappa_counts_distance() -> None:
    kappa = METRICS["kappa"]
    near = kappa(np.array([0, 1, 2, 3] * 3), np.array([1, 1, 2, 3] * 3), 4)
    far = kappa(np.array([0, 1, 2, 3] * 3), np.array([3, 1, 2, 3] * 3), 4)
    assert near > far


def test_unknown_metric() -> None:
    with pytest.raises(NotFoundError) as exc:
        METRICS["auc"]
    assert str(exc.value) == f"unknown metric 'auc' (valid: {', '.join(METRICS)})"


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
    assert str(exc.value) == f"{sub} line 3: label '12' is not a class index 0-9, as the submission format of 'digits' writes labels"


def test_a_label_not_of_the_submission_form_is_refused(tmp_path: Path) -> None:
    """lemon writes indices: a class name there is not scored as if the site would read it."""
    lemon = get_competition("lemon")
    sol = write(tmp_path / "solution.csv", "id,class_num\na.jpg,0\nb.jpg,1\nc.jpg,2\n")
    sub = write(tmp_path / "sub.csv", "id,class_num\na.jpg,0\nb.jpg, excellent\nc.jpg,2\n")
    with pytest.raises(FlowError) as exc:
        score_submission(lemon, sub, sol)
    assert str(exc.value) == (
        f"{sub} line 3: label 'excellent' is not a class index 0-3, as the submission format of 'lemon' writes labels; "
        "'excellent' is class 0"
    )
    zodiac = get_competition("zodiac")
    sol = write(tmp_path / "solution.csv", "id,label\na.jpg,ox\nb.jpg,pig\n")
    sub = write(tmp_path / "sub.csv", "id,label\na.jpg,ox\nb.jpg,1\n")
    with pytest.raises(FlowError) as exc:
        score_submission(zodiac, sub, sol)
    assert str(exc.value) == f"{sub} line 3: label '1' is not a class name of 'zodiac': {', '.join(zodiac.classes)}"


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
