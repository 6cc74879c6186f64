"""Multi-label metrics agree with scikit-learn on hand-made sets, and single-label scoring is unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, fbeta_score, roc_auc_score

from kaggle_flow.errors import FlowError
from kaggle_flow.metrics import METRICS

# four images, four classes: a partial hit, an exact hit, a miss with a false alarm, an empty truth
Y = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0]], dtype=np.uint8)
P = np.array([
    [0.9, 0.2, 0.7, 0.1],  # at 0.5: {0, 2} for {0, 1}
    [0.1, 0.3, 0.8, 0.2],  # {2}: exact
    [0.4, 0.6, 0.1, 0.55],  # {1, 3} for {0, 3}
    [0.2, 0.1, 0.3, 0.4],  # {}: nothing true, nothing predicted
])
D = (P >= 0.5).astype(np.uint8)


def test_mean_f2_is_sklearns_sample_average_with_an_empty_image_scoring_0() -> None:
    expected = fbeta_score(Y, D, beta=2, average="samples", zero_division=0)
    assert METRICS["mean_f2"](Y, P) == pytest.approx(expected)
    # by hand: F2 of ({0,2} vs {0,1}) = 0.5, exact = 1, ({1,3} vs {0,3}) = 0.5, empty vs empty = 0
    assert METRICS["mean_f2"](Y, P) == pytest.approx((0.5 + 1 + 0.5 + 0) / 4)
    assert METRICS["mean_f1"](Y, P) == pytest.approx(f1_score(Y, D, average="samples", zero_division=0))


def test_f2_weighs_recall_over_precision() -> None:
    y = np.array([[1, 1, 0, 0]])
    more = np.array([[1, 1, 1, 1]])  # all found, two false alarms
    fewer = np.array([[1, 0, 0, 0]])  # one found, no false alarm
    assert METRICS["mean_f2"].of_labels(y, more, 4) == pytest.approx(fbeta_score(y, more, beta=2, average="samples"))
    assert METRICS["mean_f2"].of_labels(y, more, 4) > METRICS["mean_f2"].of_labels(y, fewer, 4)


@pytest.mark.parametrize("average", ["micro", "macro"])
def test_micro_and_macro_f1_are_sklearns_on_indicator_matrices(average: str) -> None:
    assert METRICS[f"{average}_f1"](Y, P) == pytest.approx(f1_score(Y, D, average=average, zero_division=0))


def test_macro_f1_leaves_out_a_class_neither_true_nor_predicted() -> None:
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    d = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0]])
    assert METRICS["macro_f1"].of_labels(y, d, 3) == pytest.approx(f1_score(y, d, labels=[0, 1], average="macro"))


def test_thresholds_decide_the_sets_scored() -> None:
    low = np.array([0.3, 0.3, 0.3, 0.3])
    expected = fbeta_score(Y, (P >= low).astype(int), beta=2, average="samples", zero_division=0)
    assert METRICS["mean_f2"](Y, P, low) == pytest.approx(expected)
    assert METRICS["mean_f2"](Y, P, low) != pytest.approx(METRICS["mean_f2"](Y, P))


def test_mean_auc_averages_the_classes_with_both_positives_and_negatives() -> None:
    y = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 1], [0, 0, 1]])  # class 2 is true everywhere: left out
    p = np.array([[0.8, 0.3, 0.9], [0.4, 0.6, 0.2], [0.3, 0.9, 0.5], [0.1, 0.7, 0.4]])
    expected = np.mean([roc_auc_score(y[:, c], p[:, c]) for c in (0, 1)])
    assert METRICS["mean_auc"](y, p) == pytest.approx(expected)
    assert METRICS["mean_auc"](y[:, :2], p[:, :2]) == pytest.approx(roc_auc_score(y[:, :2], p[:, :2], average="macro"))


def test_single_label_scoring_is_unchanged() -> None:
    y = np.array([0, 1, 2, 1])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    assert METRICS["micro_f1"](y, p) == pytest.approx(0.75)
    assert METRICS["macro_f1"](y, p) == pytest.approx(f1_score(y, p.argmax(1), average="macro"))
    assert METRICS["mean_auc"](y, p) == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))


def test_a_metric_refuses_the_other_form_in_one_line() -> None:
    with pytest.raises(FlowError, match="'mean_f2' scores sets of labels"):
        METRICS["mean_f2"](np.array([0, 1]), np.array([[0.6, 0.4], [0.3, 0.7]]))
    with pytest.raises(FlowError, match="'accuracy' scores one class an image"):
        METRICS["accuracy"](Y, P)
    assert METRICS["mean_f2"].targets == ("multi",)
    assert {"single", "multi"} <= set(METRICS["mean_auc"].targets) and METRICS["accuracy"].targets == ("single",)


@pytest.mark.parametrize("name", ["mean_f2", "mean_f1", "micro_f1", "macro_f1"])
def test_a_sweep_scores_each_replaced_column_as_scoring_it_whole(name: str) -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((40, 5)) < 0.3).astype(np.uint8)
    d = (rng.random((40, 5)) < 0.3).astype(np.uint8)
    metric = METRICS[name]
    sweep = metric.sweep(y, d)
    for j in (2, 0, 2, 4):  # columns set one after another: the kept counts follow each move
        columns = (rng.random((40, 4)) < 0.5).astype(np.uint8)
        swept = sweep.scores(j, columns)
        for g in range(4):
            trial = d.copy()
            trial[:, j] = columns[:, g]
            assert swept[g] == pytest.approx(metric.of_labels(y, trial, 5))
        d[:, j] = columns[:, 1]
        sweep.set(j, columns[:, 1])


def test_every_multi_label_metric_is_checked_here() -> None:
    checked = {"mean_f2", "mean_f1", "micro_f1", "macro_f1", "mean_auc"}  # each against scikit-learn above
    assert {n for n in METRICS if "multi" in METRICS[n].targets} == checked


def test_a_tie_is_one_images_worth() -> None:
    assert METRICS["mean_f2"].tie(50) == pytest.approx(1 / 50)
