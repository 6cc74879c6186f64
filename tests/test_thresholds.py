"""Per-class thresholds fitted on out-of-fold probabilities: never worse than 0.5 where fitted, low where a
class needs it, the global one for a rare class, kept in the run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kaggle_flow.errors import DataError
from kaggle_flow.metrics import METRICS
from kaggle_flow.thresholds import (
    GRID,
    MIN_POSITIVES,
    Thresholds,
    apply,
    fit_thresholds,
    read_thresholds,
    write_thresholds,
)


def _planted(n: int = 200, seed: int = 0, rare_positives: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four classes, the positives of most near 0.8 (negatives below 0.45); class 1 shy (positives
    ~0.3, negatives ~0.05). With rare_positives: class 1 is like the others and class 3 is shy with
    that many positives."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < 0.3).astype(np.uint8)
    p = np.where(y == 1, rng.uniform(0.6, 0.95, y.shape), rng.uniform(0.0, 0.45, y.shape))
    shy = 3 if rare_positives else 1
    if rare_positives:
        y[:, shy] = 0
        y[:rare_positives, shy] = 1
    p[:, shy] = np.where(y[:, shy] == 1, rng.uniform(0.25, 0.35, n), rng.uniform(0.0, 0.1, n))
    return y, p


@pytest.mark.parametrize("name", ["mean_f2", "mean_f1", "micro_f1", "macro_f1"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fitted_thresholds_never_score_below_half_on_the_rows_fitted(name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random((120, 6)) < 0.25).astype(np.uint8)
    p = np.clip(0.35 * y + rng.random((120, 6)) * 0.7, 0, 1)  # overlapping: no perfect cut
    t = fit_thresholds(y, p, METRICS[name])
    assert t.score_at_half == pytest.approx(METRICS[name](y, p))
    assert t.score >= t.score_at_half
    assert t.score == pytest.approx(METRICS[name].of_labels(y, apply(p, t), 6))
    assert set(t.values) <= set(GRID)


def test_a_class_whose_positives_are_shy_gets_a_low_threshold() -> None:
    y, p = _planted()
    t = fit_thresholds(y, p, METRICS["mean_f2"])
    assert 0.1 <= t.values[1] <= 0.25  # between its negatives (< 0.1) and its positives (0.25-0.35)
    assert t.values[0] > 0.25 and t.score > t.score_at_half


def test_a_rare_class_keeps_the_global_threshold() -> None:
    y, p = _planted(rare_positives=MIN_POSITIVES - 1)  # as shy as class 1, too few to fit its own
    metric = METRICS["mean_f2"]
    t = fit_thresholds(y, p, metric)
    best_global = max(metric(y, p, np.full(4, g)) for g in GRID)
    assert metric(y, p, np.full(4, t.values[3])) == pytest.approx(best_global)
    assert t.values[3] > 0.35  # its own fit would have gone below its positives
    enough = fit_thresholds(*_planted(rare_positives=2 * MIN_POSITIVES), metric)  # in every fit of the parts too
    assert enough.how == "per class" and enough.values[3] <= 0.25


def test_the_way_to_cut_is_chosen_on_rows_left_out_of_its_fit() -> None:
    metric = METRICS["mean_f2"]
    y, p = _planted()  # a shy class: its own threshold wins on rows it never saw
    t = fit_thresholds(y, p, metric)
    assert t.how == "per class" and t.held_out[2] > max(t.held_out[:2])
    assert t.held_out[0] == pytest.approx(t.score_at_half)  # 0.5 is fitted on nothing: the same everywhere
    rng = np.random.default_rng(1)  # eight alike classes, 10-24 positives each, overlapping probabilities
    y = (rng.random((160, 8)) < 0.1).astype(np.uint8)
    p = np.clip(np.where(y == 1, rng.normal(0.35, 0.15, y.shape), rng.normal(0.15, 0.1, y.shape)), 0, 1)
    t = fit_thresholds(y, p, metric)
    per_class = _fitted_on_all(y, p, "per class")
    assert t.how == "global" and len(set(t.values)) == 1
    assert per_class > t.score  # on the rows fitted, per-class cuts look better; left out, they were not
    assert t.held_out[2] < t.held_out[1]


def _fitted_on_all(y: np.ndarray, p: np.ndarray, how: str) -> float:
    from kaggle_flow.thresholds import _fitted

    return METRICS["mean_f2"].of_labels(y, apply(p, _fitted(y, p, METRICS["mean_f2"], how)), y.shape[1])


def test_at_least_one_label_an_image_when_it_raises_the_score() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 5, 100)
    y = np.eye(5, dtype=np.uint8)[truth]  # one true class an image
    p = np.where(y == 1, rng.uniform(0.3, 0.9, y.shape), rng.uniform(0.0, 0.25, y.shape))
    quiet = np.arange(0, 100, 4)  # a quarter of the images: every class low, the right one the least low
    p[quiet] = 0.02
    p[quiet, truth[quiet]] = 0.15  # below other images' negatives: no threshold finds it, the arg-max does
    t = fit_thresholds(y, p, METRICS["mean_f1"])
    assert t.at_least_one
    assert apply(p, t).sum(axis=1).min() >= 1
    assert t.score == pytest.approx(METRICS["mean_f1"].of_labels(y, apply(p, t), 5))


def test_a_metric_of_probabilities_has_no_cut() -> None:
    y, p = _planted()
    t = fit_thresholds(y, p, METRICS["mean_auc"])
    assert np.all(t.values == 0.5) and not t.at_least_one and t.score == t.score_at_half and t.how == "0.5"


def test_thresholds_round_trip_through_the_run_folder(tmp_path: Path) -> None:
    assert read_thresholds(tmp_path) is None  # none fitted: decide at 0.5
    t = fit_thresholds(*_planted(), METRICS["mean_f2"])
    write_thresholds(tmp_path, t)
    assert read_thresholds(tmp_path, num_classes=4) == t
    assert np.array_equal(apply(np.full((2, 4), 0.3), read_thresholds(tmp_path)), apply(np.full((2, 4), 0.3), t))


@pytest.mark.parametrize("text", ['{"values": [0.3, 0.5', '{"values": [0.3, 7], "at_least_one": false, '
                                  '"score_at_half": 0.5, "score": 0.6}', "[]", "\xff\xfe"])
def test_a_damaged_thresholds_file_is_one_line_naming_it(tmp_path: Path, text: str) -> None:
    (tmp_path / "thresholds.json").write_text(text, encoding="latin-1")
    with pytest.raises(DataError) as err:
        read_thresholds(tmp_path)
    assert str(tmp_path / "thresholds.json") in str(err.value) and "\n" not in str(err.value)


def test_thresholds_for_another_class_count_are_refused(tmp_path: Path) -> None:
    write_thresholds(tmp_path, Thresholds(np.full(3, 0.4), False, 0.5, 0.6))
    with pytest.raises(DataError, match="3 thresholds for 5 classes"):
        read_thresholds(tmp_path, num_classes=5)
