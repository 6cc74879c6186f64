"""The training loop: schedules, losses, EMA, repeatability, resume, cross-validation, prediction."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pandas as pd
import pytest
from tiny_comp import make_tiny

from kaggle_flow import augment, train
from kaggle_flow.data import ImageDataset, build_cache, make_loader
from kaggle_flow.errors import FlowError
from kaggle_flow.models import create_model
from kaggle_flow.predict import check_run, predict_probs
from kaggle_flow.runs import list_runs, load_config, resolve_run
from kaggle_flow.workspace import open_workspace


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path)
    return tmp_path


# --- schedules ------------------------------------------------------------------------------------


def _lrs(schedule: paddle.optimizer.lr.LRScheduler, n: int) -> list[float]:
    out = []
    for _ in range(n):
        out.append(schedule())
        schedule.step()
    return out


def test_cosine_with_warmup_follows_the_formula() -> None:
    lr, total, warmup = 0.1, 50, 10
    got = _lrs(train.build_schedule("cosine", lr, total_steps=total, warmup_steps=warmup), total)
    for s in (0, 1, 5, 9, 10, 11, 25, 30, 49):
        want = lr * s / warmup if s < warmup else lr * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))
        assert got[s] == pytest.approx(want, abs=1e-9), s
    assert max(got) == pytest.approx(lr)


def test_cosine_without_warmup_starts_at_the_peak() -> None:
    got = _lrs(train.build_schedule("cosine", 0.01, total_steps=20, warmup_steps=0), 20)
    assert got[0] == pytest.approx(0.01)
    assert got[10] == pytest.approx(0.005)


def test_step_and_constant_schedules() -> None:
    step = _lrs(train.build_schedule("step", 1.0, total_steps=30, warmup_steps=0), 30)
    assert step[0] == 1.0 and step[9] == 1.0 and step[10] == pytest.approx(0.1) and step[29] == pytest.approx(0.01)
    assert set(_lrs(train.build_schedule("constant", 0.5, total_steps=10, warmup_steps=0), 10)) == {0.5}
    warm = _lrs(train.build_schedule("constant", 0.5, total_steps=10, warmup_steps=4), 10)
    assert warm[:5] == pytest.approx([0.0, 0.125, 0.25, 0.375, 0.5]) and warm[9] == 0.5


# --- losses ---------------------------------------------------------------------------------------


def _logits_and_labels(seed: int = 0, n: int = 8, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 2, (n, k)).astype(np.float32), rng.integers(0, k, n)


def test_label_smoothing_loss_equals_its_formula() -> None:
    logits, labels = _logits_and_labels()
    k, eps = logits.shape[1], 0.1
    targets = F.label_smooth(F.one_hot(paddle.to_tensor(labels), k), epsilon=eps)
    got = float(train.soft_cross_entropy(paddle.to_tensor(logits), targets))
    q = (1 - eps) * np.eye(k)[labels] + eps / k
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert got == pytest.approx(float(-(q * log_p).sum(axis=1).mean()), rel=1e-5)


def test_focal_with_gamma_0_and_weighted_with_equal_weights_are_cross_entropy() -> None:
    logits, labels = _logits_and_labels(1)
    x, q = paddle.to_tensor(logits), F.one_hot(paddle.to_tensor(labels), logits.shape[1])
    ce = float(F.cross_entropy(x, paddle.to_tensor(labels)))
    assert float(train.soft_cross_entropy(x, q)) == pytest.approx(ce, rel=1e-5)
    assert float(train.focal_loss(x, q, 0.0)) == pytest.approx(ce, rel=1e-5)
    assert float(train.weighted_cross_entropy(x, q, paddle.full([logits.shape[1]], 3.0))) == pytest.approx(ce, rel=1e-5)
    assert float(train.focal_loss(x, q, 2.0)) < ce


def test_class_weights_are_inverse_frequency() -> None:
    weights = train.class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights == pytest.approx([4 / 6, 4 / 2])
    assert train.class_weights(np.array([0, 1, 0, 1]), 2) == pytest.approx([1.0, 1.0])


def test_ema_is_the_moving_average() -> None:
    paddle.seed(0)
    model = paddle.nn.Linear(2, 1)
    ema = train.EMA(model, decay=0.5)
    start = model.weight.numpy().copy()
    model.weight.set_value(np.ones_like(start))
    ema.update(model)  # decay min(0.5, 2/11)
    d = 2 / 11
    assert ema.shadow["weight"].numpy() == pytest.approx(d * start + (1 - d) * 1.0)
    with ema.applied(model):
        assert model.weight.numpy() == pytest.approx(ema.shadow["weight"].numpy())
    assert model.weight.numpy() == pytest.approx(np.ones_like(start))


# --- one tiny step for every registry entry -------------------------------------------------------


def _one_step(tmp_path: Path, *, preset: str = "none", schedule: str = "cosine", optimizer: str = "adam", loss: str = "ce") -> float:
    make_tiny(tmp_path, per_class=4)
    rows = pd.read_csv(tmp_path / "data/tiny/train.csv")
    rows["path"] = [str(tmp_path / "data/tiny/train" / i) for i in rows["id"]]
    cache = build_cache(rows["path"].tolist(), 16, 1, None)
    transform = augment.build_train_transform(preset, 16, 1)
    data = ImageDataset(rows, cache, mean=[0.5], std=[0.25], transform=transform)
    images, labels = next(iter(make_loader(data, batch_size=8, shuffle=True, seed=0)))
    model = create_model("smallcnn", 3, in_channels=1)
    sched = train.build_schedule(schedule, 1e-3, total_steps=10, warmup_steps=2)
    opt = train.build_optimizer(optimizer, sched, model.parameters(), 1e-4)
    loss_fn = train.build_loss(loss, train_labels=rows["label"].to_numpy(), num_classes=3)
    value = loss_fn(model(images), F.one_hot(labels.astype("int64"), 3))
    value.backward()
    opt.step()
    sched.step()
    assert list(images.shape) == [8, 1, 16, 16] and images.dtype == paddle.float32
    return float(value)


@pytest.mark.parametrize("preset", [p.name for p in augment.list_presets()])
def test_every_preset_trains_one_step(tmp_path: Path, preset: str) -> None:
    assert math.isfinite(_one_step(tmp_path, preset=preset))


@pytest.mark.parametrize("schedule", [s.name for s in train.list_schedules()])
def test_every_schedule_trains_one_step(tmp_path: Path, schedule: str) -> None:
    assert math.isfinite(_one_step(tmp_path, schedule=schedule))


@pytest.mark.parametrize("optimizer", [o.name for o in train.list_optimizers()])
def test_every_optimizer_trains_one_step(tmp_path: Path, optimizer: str) -> None:
    assert math.isfinite(_one_step(tmp_path, optimizer=optimizer))


@pytest.mark.parametrize("loss", [x.name for x in train.list_losses()])
def test_every_loss_trains_one_step(tmp_path: Path, loss: str) -> None:
    assert math.isfinite(_one_step(tmp_path, loss=loss))


# --- config ---------------------------------------------------------------------------------------


def test_config_is_the_recipe_overridden_by_flags(tiny: Path) -> None:
    ws = open_workspace("tiny")
    config = train.resolve_config(ws.comp, {"lr": 0.01, "epochs": None, "sizes": [12, 16]})
    assert config["lr"] == 0.01 and config["epochs"] == 2 and config["image_size"] == 16
    assert config["classes"] == ["horizontal", "vertical", "diagonal"] and config["mean"] == [0.5]
    assert train.epoch_sizes({**config, "epochs": 5}) == [12, 12, 16, 16, 16]
    with pytest.raises(FlowError, match=r"^unknown schedule 'linear' \(valid: cosine, step, constant\)$"):
        train.resolve_config(ws.comp, {"schedule": "linear"})
    with pytest.raises(FlowError, match=r"^--label-smoothing must be in \[0, 1\) \(got 1.5\)$"):
        train.resolve_config(ws.comp, {"label_smoothing": 1.5})
    with pytest.raises(FlowError, match="^--sizes takes pixel sizes"):
        train.parse_sizes("64,big")


# --- whole runs -----------------------------------------------------------------------------------


def _files(run: Path) -> set[str]:
    return {p.name for p in run.iterdir()}


def test_seed_repeats_a_cpu_run_exactly(tiny: Path) -> None:
    ws = open_workspace("tiny")
    options = {"seed": 7, "preset": "affine", "mixup": 0.2}
    first = train.train(ws, options)
    second = train.train(ws, options)
    assert first != second
    assert (first / "metrics.csv").read_text() == (second / "metrics.csv").read_text()
    assert (first / "oof.csv").read_text() == (second / "oof.csv").read_text()
    other = train.train(ws, {**options, "seed": 8})
    assert (other / "metrics.csv").read_text() != (first / "metrics.csv").read_text()


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny: Path) -> None:
    ws = open_workspace("tiny")
    options = {"epochs": 3, "ema": 0.9, "preset": "affine"}
    whole = train.train(ws, options)

    def stop_after_two(epoch: int, row: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(train.TrainingInterrupted, match=r"^interrupted after epoch 2 of 3; continue with: flow train tiny --resume "):
        train.train(ws, options, on_epoch_end=stop_after_two)
    broken = next(p for p in ws.runs_dir.iterdir() if (p / "config.json").is_file() and p != whole)
    assert json.loads((broken / "summary.json").read_text())["status"] == "interrupted"
    assert len(pd.read_csv(broken / "metrics.csv")) == 2
    assert not list(broken.glob("*.tmp")) and not list(broken.glob(".*.tmp"))
    for name in ("last.pdparams", "last.pdopt", "last.pdstate", "best.pdparams"):
        assert paddle.load(str(broken / name))
    assert paddle.load(str(broken / "last.pdstate"))["epoch"] == 2

    resumed = train.train(ws, resume=broken.name)
    assert resumed == broken
    summary = json.loads((broken / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_done"] == 3
    assert (broken / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    assert not list(broken.glob(".*.tmp"))
    with pytest.raises(FlowError, match="already finished"):
        train.train(ws, resume=broken.name)


def test_patience_stops_early_and_options_combine(tiny: Path) -> None:
    ws = open_workspace("tiny")
    run = train.train(
        ws,
        {"epochs": 4, "lr": 1e-9, "patience": 1, "balance": True, "cutmix": 0.5, "loss": "focal", "sizes": [12, 16],
         "schedule": "step", "optimizer": "sgd", "label_smoothing": 0.0},
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped early" and summary["epochs_done"] < 4
    assert {"best.pdparams", "oof.csv", "curves.png", "confusion.png"} <= _files(run)


def test_max_params_refused_before_a_run_folder_exists(tiny: Path) -> None:
    ws = open_workspace("tiny")
    with pytest.raises(FlowError, match=r"^smallcnn has [\d,]+ parameters, over the competition's limit of 1,000"):
        train.train(ws, {"max_params": 1000})
    assert not ws.runs_dir.exists() or not [p for p in ws.runs_dir.iterdir() if p.is_dir()]


def test_folds_all_and_prediction(tiny: Path) -> None:
    from kaggle_flow.fileio import write_csv
    from kaggle_flow.split import make_folds

    ws = open_workspace("tiny")
    write_csv(ws.folds_file(), make_folds(ws.table(), folds=2, seed=0))
    parent = train.train(ws, {"folds": "all", "epochs": 1})
    assert parent.name.endswith("-cv2")
    assert [p.name for p in sorted(parent.glob("fold*"))] == ["fold0", "fold1"]
    oof = pd.read_csv(parent / "oof.csv")
    assert len(oof) == 60 and oof["id"].is_unique
    summary = json.loads((parent / "summary.json").read_text())
    assert summary["cv_score"] == summary["best_score"] and len(summary["fold_scores"]) == 2

    test = ws.table().query("split == 'test'").reset_index(drop=True)
    probs = predict_probs(parent, test)
    assert probs.shape == (len(test), 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    folds = [predict_probs(parent / f"fold{k}", test) for k in range(2)]
    assert probs == pytest.approx(np.mean(folds, axis=0), abs=1e-6)
    reversed_probs = predict_probs(parent / "fold0", test.iloc[::-1])
    assert reversed_probs == pytest.approx(folds[0][::-1], abs=1e-6)
    tta = predict_probs(parent / "fold0", test, tta=True)
    assert tta.shape == probs.shape and not np.allclose(tta, folds[0])

    runs = list_runs(ws.runs_dir)
    assert list(runs["run"]) == [parent.name] and runs.loc[0, "fold"] == "all (2)"
    assert resolve_run(ws, None, best=True) == parent
    assert resolve_run(ws, f"{parent.name}/fold1") == parent / "fold1"
    assert load_config(parent / "fold1")["fold"] == 1


def test_check_run_refuses_another_competition(tiny: Path) -> None:
    ws = open_workspace("tiny")
    run = train.train(ws, {"epochs": 1})
    check_run(run, ws.comp)
    digits = open_workspace("digits", remember_it=False).comp
    with pytest.raises(FlowError, match=rf"^{run}: a run of 'tiny', not of 'digits'$"):
        check_run(run, digits)
    with pytest.raises(FlowError, match=r"^unknown run 'nope' in runs/tiny \(runs: "):
        resolve_run(ws, "nope")
