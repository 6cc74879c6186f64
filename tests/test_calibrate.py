"""Temperature scaling for log loss: fitted on the run's out-of-fold predictions, written, and said."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import flow
from tiny_comp import make_tiny

from kaggle_flow.metrics import METRICS
from kaggle_flow.submit.calibrate import MIN_ROWS, fit_temperature, scaled


def smoothed(labels: np.ndarray, k: int, right: float, eps: float = 0.1) -> np.ndarray:
    """What a label-smoothed model gives: its class at most 1 - eps + eps/k, wrong on a share of the rows."""
    rng = np.random.default_rng(0)
    guess = np.where(rng.random(len(labels)) < right, labels, (labels + 1) % k)
    return np.full((len(labels), k), eps / k) + np.eye(k)[guess] * (1 - eps)


def test_a_capped_accurate_model_is_sharpened_and_its_log_loss_falls() -> None:
    labels = np.arange(300) % 4
    probs = smoothed(labels, 4, right=0.97)
    t = fit_temperature(labels, probs)
    logloss = METRICS["logloss"]
    assert t < 1
    assert logloss(labels, scaled(probs, t)) < logloss(labels, probs)
    assert (scaled(probs, t).argmax(1) == probs.argmax(1)).all()  # no prediction changes class
    np.testing.assert_allclose(scaled(probs, t).sum(1), 1.0)
    for other in (t * 0.8, t * 1.25):  # the fitted one is the minimum
        assert logloss(labels, scaled(probs, t)) <= logloss(labels, scaled(probs, other)) + 1e-9


def test_an_overconfident_model_is_softened() -> None:
    labels = np.arange(200) % 2
    probs = smoothed(labels, 2, right=0.7, eps=0.002)  # 30% wrong at 99.9% confidence
    assert fit_temperature(labels, probs) > 1


@pytest.mark.parametrize(("metric", "kind"), [("logloss", "probabilities"), ("accuracy", "label")])
def test_flow_submit_writes_the_calibrated_probabilities_for_log_loss_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metric: str, kind: str
) -> None:
    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path, per_class=340, metric=metric)  # a 10% hold-out of 1,020 images: 102 out-of-fold rows
    toml = tmp_path / "competitions" / "tiny.toml"
    toml.write_text(toml.read_text() + f'\n[submission]\nkind = "{kind}"\n')
    assert flow("train", "tiny", "--epochs", "2").exit_code == 0
    result = flow("submit", "tiny")
    assert result.exit_code == 0, result.output
    line = re.search(r"Calibrated for log loss: temperature ([\d.]+) fitted on (\S+) "
                     r"\(out-of-fold log loss ([\d.]+) -> ([\d.]+)\)", result.output)
    if metric != "logloss":
        assert line is None and "alibrated" not in result.output
        return
    assert line is not None, result.output
    t, before, after = float(line[1]), float(line[3]), float(line[4])
    assert after <= before
    (run,) = [p for p in (tmp_path / "runs/tiny").iterdir() if (p / "test_probs.npy").is_file()]
    (csv,) = [p for p in (tmp_path / "submissions/tiny").glob("*.csv") if p.name != "ledger.csv"]
    written = pd.read_csv(csv)[["horizontal", "vertical", "diagonal"]].to_numpy()
    np.testing.assert_allclose(written, scaled(np.load(run / "test_probs.npy"), t), atol=1e-3)  # t as printed, to 3 decimals


def test_a_fold_without_a_mistake_sharpens_no_further_than_the_bound() -> None:
    """All right on the fold would push the temperature to 0: certainty that one wrong test image pays dearly for."""
    from kaggle_flow.submit.calibrate import TEMPERATURES

    labels = np.arange(100) % 2
    probs = smoothed(labels, 2, right=1.0)
    assert fit_temperature(labels, probs) == pytest.approx(TEMPERATURES[0], rel=1e-3)


def test_a_fold_of_a_few_images_fits_no_temperature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A temperature fitted on a handful of out-of-fold predictions is noise: written as predicted, and said so."""
    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path, metric="logloss")  # 60 images: 6 out-of-fold rows
    toml = tmp_path / "competitions" / "tiny.toml"
    toml.write_text(toml.read_text() + '\n[submission]\nkind = "probabilities"\n')
    assert flow("train", "tiny", "--epochs", "2").exit_code == 0
    result = flow("submit", "tiny")
    assert result.exit_code == 0, result.output
    (run,) = [p for p in (tmp_path / "runs/tiny").iterdir() if (p / "test_probs.npy").is_file()]
    assert (f"Not calibrated for log loss: 6 out-of-fold predictions in runs/tiny/{run.name}/oof.csv, fewer than the "
            f"{MIN_ROWS} a temperature is fitted on; the probabilities are written as predicted") in result.output
    (csv,) = [p for p in (tmp_path / "submissions/tiny").glob("*.csv") if p.name != "ledger.csv"]
    written = pd.read_csv(csv)[["horizontal", "vertical", "diagonal"]].to_numpy()
    np.testing.assert_allclose(written, np.load(run / "test_probs.npy"), atol=1e-6)
