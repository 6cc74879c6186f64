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
from kaggle_flow.metrics import (
    LOGLOSS_EPS,
    METRICS,
    known_metric,
    mean_average_precision,
)
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


def _clipped(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return p / p.sum(axis=1, keepdims=True)


def _sklearn(name: str) -> Callable[[np.ndarray, np.ndarray, int], float]:
    """scikit-learn's own function for a metric, called the plain way; a new metric needs one here.
    Label metrics get class indices, probability metrics the [n, k] probabilities."""
    from sklearn import metrics as skm
    from sklearn.preprocessing import label_binarize

    references = {
        "accuracy": lambda t, p, k: skm.accuracy_score(t, p),
        "micro_f1": lambda t, p, k: skm.f1_score(t, p, average="micro"),
        "macro_f1": lambda t, p, k: skm.f1_score(t, p, average="macro", zero_division=0),
        "balanced_accuracy": lambda t, p, k: skm.balanced_accuracy_score(t, p),
        "kappa": lambda t, p, k: skm.cohen_kappa_score(t, p, labels=list(range(k)), weights="quadratic"),
        "logloss": lambda t, p, k: skm.log_loss(t, _clipped(p), labels=list(range(k))),
        "auc": lambda t, p, k: skm.roc_auc_score(t, p[:, 1]),
        "mean_auc": lambda t, p, k: skm.roc_auc_score(label_binarize(t, classes=list(range(max(k, 3))))[:, :k], p, average="macro"),
        "map@5": lambda t, p, k: float(np.mean([1 / (r + 1) if r < 5 else 0 for r in (np.argsort(-p, kind="stable") == t[:, None]).argmax(1)])),
    }
    if name not in references:
        pytest.fail(f"metric '{name}' has no scikit-learn reference in tests/test_score.py: add one, and its known answers to CASES")
    return references[name]


SINGLE_METRICS = [n for n in METRICS if "single" in METRICS[n].targets]  # multi-label: test_multilabel_metrics.py
LABEL_METRICS = [n for n in SINGLE_METRICS if METRICS[n].scores == "labels"]
PROBABILITY_METRICS = [n for n in SINGLE_METRICS if METRICS[n].scores == "probabilities"]


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
for _, _, _, _known in CASES.values():
    _known["micro_f1"] = _known["accuracy"]  # one label per image: pooled F1 is the share right


def _probs(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


PROBABILITY_CASES = {  # y_true, probabilities, the answer worked out by hand (None: the metric refuses the case)
    "two classes": (
        np.array([0, 0, 1, 1]), _probs([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]]),
        {
            "logloss": -(np.log(0.9) + np.log(0.6) + np.log(0.35) + np.log(0.8)) / 4,
            "auc": 3 / 4,  # positives 0.35, 0.8 over negatives 0.1, 0.4: 3 of 4 pairs in order
            "mean_auc": (3 / 4 + 3 / 4) / 2,  # class 0: 0.9, 0.6 over 0.65, 0.2: 3 of 4
            "map@5": (1 + 1 + 1 / 2 + 1) / 4,
        },
    ),
    "three classes": (
        np.array([0, 1, 2, 2]), _probs([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.1, 0.6, 0.3]]),
        {
            "logloss": -(np.log(0.7) + np.log(0.3) + np.log(0.6) + np.log(0.3)) / 4,
            "auc": None,  # ROC AUC of one class is for two classes
            "mean_auc": (1 + 2 / 3 + 1) / 3,  # class 1: 0.3 over 0.2, 0.2, 0.6: 2 of 3
            "map@5": (1 + 1 / 2 + 1 + 1 / 2) / 4,  # row 3: ties keep the lower class first
        },
    ),
    "certain and wrong": (  # log loss clips 0 and 1 by LOGLOSS_EPS instead of giving infinity
        np.array([0, 1]), _probs([[1.0, 0.0], [1.0, 0.0]]),
        {
            "logloss": -(np.log(1 - 1e-15) + np.log(1e-15)) / 2,
            "auc": 1 / 2,  # one tie
            "mean_auc": 1 / 2,
            "map@5": (1 + 1 / 2) / 2,
        },
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", LABEL_METRICS)
def test_metric_gives_the_known_answer_and_agrees_with_scikit_learn(name: str, case: str) -> None:
    y_true, y_pred, k, known = CASES[case]
    reference = _sklearn(name)
    if name not in known:
        pytest.fail(f"metric '{name}' has no known answer for the case '{case}' in tests/test_score.py")
    metric = METRICS[name]
    value = metric.of_labels(y_true, y_pred, k)
    assert value == pytest.approx(known[name])
    probs = np.full((len(y_pred), k), 0.1)
    probs[np.arange(len(y_pred)), y_pred] = 0.7
    assert metric(y_true, probs) == value  # probabilities: the arg-max is scored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns on the absent and the single classes
        expected = reference(y_true, y_pred, k)
    if np.isnan(expected):  # undefined for scikit-learn: the known answer above is the metric's own
        assert case == "one class everywhere" and name == "kappa"
    else:
        assert value == pytest.approx(expected)


@pytest.mark.parametrize("case", list(PROBABILITY_CASES))
@pytest.mark.parametrize("name", PROBABILITY_METRICS)
def test_probability_metric_gives_the_known_answer_and_agrees_with_scikit_learn(name: str, case: str) -> None:
    y_true, probs, known = PROBABILITY_CASES[case]
    reference = _sklearn(name)
    if name not in known:
        pytest.fail(f"metric '{name}' has no known answer for the case '{case}' in tests/test_score.py")
    if known[name] is None:
        with pytest.raises(FlowError, match=f"metric '{name}' scores two classes"):
            METRICS[name](y_true, probs)
        return
    value = METRICS[name](y_true, probs)
    assert value == pytest.approx(known[name])
    assert value == pytest.approx(reference(y_true, probs, probs.shape[1]))


def test_every_metric_is_tested_against_a_reference() -> None:
    assert set(LABEL_METRICS) | set(PROBABILITY_METRICS) == set(SINGLE_METRICS)
    assert PROBABILITY_METRICS == ["logloss", "auc", "mean_auc", "map@5"]


@pytest.mark.parametrize("name", LABEL_METRICS)
def test_better_predictions_score_higher(name: str) -> None:
    y_true = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    one_wrong = y_true.copy()
    one_wrong[11] = 2
    four_wrong = one_wrong.copy()
    four_wrong[[0, 3, 6]] = [3, 3, 0]
    metric = METRICS[name]
    assert metric.of_labels(y_true, y_true, 4) == pytest.approx(1.0)
    assert metric.of_labels(y_true, y_true, 4) > metric.of_labels(y_true, one_wrong, 4) > metric.of_labels(y_true, four_wrong, 4)


@pytest.mark.parametrize("name", SINGLE_METRICS + ["map@1", "map@3"])
def test_the_direction_helper_ranks_better_predictions_first(name: str) -> None:
    """Sharper right probabilities beat vaguer ones under every metric's own direction; log loss falls."""
    y_true = np.array([0, 0, 1, 1, 0, 1])
    good = _probs([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.7, 0.3], [0.4, 0.6]])
    bad = _probs([[0.3, 0.7], [0.8, 0.2], [0.6, 0.4], [0.1, 0.9], [0.4, 0.6], [0.6, 0.4]])
    metric = METRICS[name]
    a, b = metric(y_true, good), metric(y_true, bad)
    assert metric.better(a, b) and not metric.better(b, a) and not metric.better(a, a)
    assert metric.better(b, metric.worst) and not metric.better(metric.worst, b)
    assert (a < b) == (name == "logloss")


def test_log_loss_is_lower_is_better_and_clips() -> None:
    logloss = METRICS["logloss"]
    assert not logloss.higher_is_better and logloss.worst == np.inf
    assert logloss.better(0.2, 0.3) and not logloss.better(0.3, 0.2)
    assert METRICS["accuracy"].better(0.3, 0.2) and METRICS["accuracy"].worst == -np.inf
    assert LOGLOSS_EPS == 1e-15
    unnormalized = logloss(np.array([0, 1]), _probs([[2.0, 2.0], [1.0, 3.0]]))  # rows renormalized: 0.5 and 0.75
    assert unnormalized == pytest.approx(-(np.log(0.5) + np.log(0.75)) / 2)


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_says_what_it_measures(name: str) -> None:
    assert METRICS[name].description and METRICS[name].name == name
    assert METRICS[name].scores in ("labels", "probabilities")


def test_a_probability_metric_refuses_labels() -> None:
    with pytest.raises(FlowError) as exc:
        METRICS["logloss"].of_labels(np.array([0, 1]), np.array([0, 1]), 2)
    assert str(exc.value) == "metric 'logloss' scores class probabilities, not labels"
    with pytest.raises(FlowError, match="scores class probabilities, not labels"):
        METRICS["map@3"].of_labels(np.array([0, 1]), np.array([0, 1]), 2)


def test_map_at_k_by_hand() -> None:
    y_true = np.array([0, 0, 0])
    ranked = np.array([[2, 1, 0], [0, 1, 2], [1, 2, 0]])
    assert mean_average_precision(y_true, ranked, 3) == pytest.approx((1 / 3 + 1 + 1 / 3) / 3)
    assert mean_average_precision(y_true, ranked, 2) == pytest.approx(1 / 3)
    assert mean_average_precision(y_true, ranked, 1) == pytest.approx(1 / 3)
    assert mean_average_precision(np.array([0]), np.array([[1, 1, 0]]), 3) == pytest.approx(1 / 3)  # a repeat is one place
    assert mean_average_precision(np.array([2, 3]), np.array([[2, -1, -1], [1, 0, -1]]), 3) == pytest.approx(1 / 2)  # -1 pads
    probs = _probs([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])  # rankings 3 2 1 0 and 0 1 2 3
    assert METRICS["map@3"](np.array([1, 1]), probs) == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert METRICS["map@2"](np.array([1, 1]), probs) == pytest.approx((0 + 1 / 2) / 2)
    assert METRICS["map@1"](np.array([3, 0]), probs) == pytest.approx(1.0)


def test_map_at_any_k_is_a_metric() -> None:
    assert "map@3" in METRICS and "map@12" in METRICS and known_metric("map@7") == "map@7"
    assert METRICS["map@12"].k == 12 and METRICS["map@3"].name == "map@3" and METRICS["map@3"] is METRICS["map@3"]
    for name in ("map@0", "map@", "map@x", "map@-1", "map@05"):
        assert name not in METRICS
        with pytest.raises(ValueError, match="map@K"):
            known_metric(name)


def test_kappa_counts_distance() -> None:
    kappa = METRICS["kappa"]
    near = kappa.of_labels(np.array([0, 1, 2, 3] * 3), np.array([1, 1, 2, 3] * 3), 4)
    far = kappa.of_labels(np.array([0, 1, 2, 3] * 3), np.array([3, 1, 2, 3] * 3), 4)
    assert near > far


def test_unknown_metric() -> None:
    with pytest.raises(NotFoundError) as exc:
        METRICS["auroc"]
    valid = "accuracy, micro_f1, macro_f1, balanced_accuracy, kappa, logloss, auc, mean_auc, mean_f2, mean_f1, map@K"
    assert str(exc.value) == f"unknown metric 'auroc' (valid: {valid})"


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
    assert recipe_summary(run.config) == {"model": "smallcnn", "epochs": "1", "lr": "0.003", "batch_size": "64", "preset": "affine", "excluded": "", "pseudo": ""}
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
