"""The training side: registries, the step's parts, the config, whole runs (repeat, resume, folds)."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pandas as pd
import pytest
from tiny_comp import make_tiny

from kaggle_flow.competition import get_competition
from kaggle_flow.config import parse_sizes
from kaggle_flow.engine import fit, loop, optim, step, train
from kaggle_flow.engine.checkpoint import Checkpointer, LastState, Progress
from kaggle_flow.engine.configure import build_config
from kaggle_flow.engine.runlog import QuietLog, RunLog, chance_level
from kaggle_flow.engine.speed import train_speed
from kaggle_flow.engine.step import Parallel
from kaggle_flow.errors import FlowError, TrainingInterrupted
from kaggle_flow.metrics import METRICS
from kaggle_flow.run_table import list_runs
from kaggle_flow.runs import load_run, resolve_run
from kaggle_flow.workspace import open_workspace


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path)
    return tmp_path


# --- schedules: every registered schedule follows its formula ---------------------------------------


def _lrs(name: str, lr: float, total: int, warmup: int) -> list[float]:
    schedule = optim.SCHEDULES[name].build(lr, total_steps=total, warmup_steps=warmup)
    out = []
    for _ in range(total):
        out.append(schedule())
        schedule.step()
    return out


FORMULAS = {  # lr at step s of T, after W warmup steps (linear from 0 before)
    "cosine": lambda lr, s, T, W: lr * 0.5 * (1 + math.cos(math.pi * (s - W) / (T - W))),
    "step": lambda lr, s, T, W: lr * 0.1 ** ((s - W) // math.ceil((T - W) / 3)),
    "constant": lambda lr, s, T, W: lr,
}


@pytest.mark.parametrize("name", [s.name for s in optim.SCHEDULES.values()])
@pytest.mark.parametrize("warmup", [0, 10])
def test_every_schedule_follows_its_formula(name: str, warmup: int) -> None:
    lr, total = 0.1, 50
    got = _lrs(name, lr, total, warmup)
    for s in range(total):
        want = lr * s / warmup if s < warmup else FORMULAS[name](lr, s, total, warmup)
        assert got[s] == pytest.approx(want, abs=1e-9), (name, s)


def test_every_schedule_has_a_formula_here() -> None:
    assert set(FORMULAS) == {s.name for s in optim.SCHEDULES.values()}


# --- optimizers: every registered optimizer moves the weights as its update rule says --------------


def _first_step(name: str, lr: float, weight_decay: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights before, their gradient, weights after one step of a fresh optimizer."""
    paddle.seed(0)
    model = paddle.nn.Linear(4, 3)
    schedule = optim.SCHEDULES["constant"].build(lr, total_steps=10, warmup_steps=0)
    opt = optim.OPTIMIZERS[name].build(schedule, model.parameters(), weight_decay)
    before = model.weight.numpy().copy()
    loss = (model(paddle.to_tensor(np.arange(8, dtype=np.float32).reshape(2, 4))) ** 2).mean()
    loss.backward()
    grad = model.weight.grad.numpy().copy()
    opt.step()
    return before, grad, model.weight.numpy()


FIRST_STEPS = {  # the change of a weight w with gradient g on the first step, lr and weight decay wd
    "adam": lambda w, g, lr, wd: -lr * (g + wd * w) / np.abs(g + wd * w),  # Adam's first step: lr * sign
    "adamw": lambda w, g, lr, wd: -lr * np.sign(g) - lr * wd * w,  # decoupled decay
    "sgd": lambda w, g, lr, wd: -lr * (g + wd * w),  # momentum has no history yet
}


@pytest.mark.parametrize("name", [o.name for o in optim.OPTIMIZERS.values()])
def test_every_optimizer_follows_its_update_rule(name: str) -> None:
    lr, wd = 0.01, 0.1
    before, grad, after = _first_step(name, lr, wd)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after - before, FIRST_STEPS[name](before, grad, lr, wd), rtol=1e-3, atol=1e-6)


def test_every_optimizer_has_an_update_rule_here() -> None:
    assert set(FIRST_STEPS) == {o.name for o in optim.OPTIMIZERS.values()}


def test_unknown_names_list_the_registry() -> None:
    with pytest.raises(FlowError, match=r"^unknown schedule 'linear' \(valid: cosine, step, constant\)$"):
        optim.SCHEDULES["linear"]


# --- losses -----------------------------------------------------------------------------------------


def _logits_and_labels(seed: int = 0, n: int = 8, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 2, (n, k)).astype(np.float32), rng.integers(0, k, n)


def test_label_smoothing_loss_equals_its_formula() -> None:
    logits, labels = _logits_and_labels()
    k, eps = logits.shape[1], 0.1
    targets = F.label_smooth(F.one_hot(paddle.to_tensor(labels), k), epsilon=eps)
    got = float(optim.soft_cross_entropy(paddle.to_tensor(logits), targets))
    q = (1 - eps) * np.eye(k)[labels] + eps / k
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert got == pytest.approx(float(-(q * log_p).sum(axis=1).mean()), rel=1e-5)


def test_focal_with_gamma_0_and_weighted_with_equal_weights_are_cross_entropy() -> None:
    logits, labels = _logits_and_labels(1)
    x, q = paddle.to_tensor(logits), F.one_hot(paddle.to_tensor(labels), logits.shape[1])
    ce = float(F.cross_entropy(x, paddle.to_tensor(labels)))
    assert float(optim.soft_cross_entropy(x, q)) == pytest.approx(ce, rel=1e-5)
    assert float(optim.focal_loss(x, q, 0.0)) == pytest.approx(ce, rel=1e-5)
    assert float(optim.weighted_cross_entropy(x, q, paddle.full([logits.shape[1]], 3.0))) == pytest.approx(ce, rel=1e-5)
    assert float(optim.focal_loss(x, q, 2.0)) < ce


def test_class_weights_are_inverse_frequency() -> None:
    assert optim.class_weights(np.array([0, 0, 0, 1]), 2) == pytest.approx([4 / 6, 4 / 2])
    assert optim.class_weights(np.array([0, 1, 0, 1]), 2) == pytest.approx([1.0, 1.0])


# --- the step's parts: EMA, precision ---------------------------------------------------------------


def test_ema_is_the_moving_average() -> None:
    paddle.seed(0)
    model = paddle.nn.Linear(2, 1)
    ema = step.EMA(model, decay=0.5)
    start = model.weight.numpy().copy()
    model.weight.set_value(np.ones_like(start))
    ema.update(model)  # decay min(0.5, 2/11)
    d = 2 / 11
    assert ema.shadow["weight"].numpy() == pytest.approx(d * start + (1 - d) * 1.0)
    with ema.applied(model):
        assert model.weight.numpy() == pytest.approx(ema.shadow["weight"].numpy())
    assert model.weight.numpy() == pytest.approx(np.ones_like(start))


def test_ema_off_changes_nothing() -> None:
    paddle.seed(0)
    model = paddle.nn.Linear(2, 1)
    ema = step.EMA(model, decay=0.0)
    model.weight.set_value(np.full([2, 1], 3.0, np.float32))
    ema.update(model)
    with ema.applied(model):
        assert (model.weight.numpy() == 3.0).all()
    assert ema.state_dict() is None


# --- the config --------------------------------------------------------------------------------------


def test_config_is_the_recipe_overridden_by_flags(tiny: Path) -> None:
    ws = open_workspace("tiny")
    config = build_config(ws.comp, {"lr": 0.01, "epochs": None, "sizes": [12, 16]})
    assert config.lr == 0.01 and config.epochs == 2 and config.image_size == 16
    assert config.classes == ["horizontal", "vertical", "diagonal"] and config.mean == [0.5]
    assert config.model_copy(update={"epochs": 5}).epoch_sizes() == [12, 12, 16, 16, 16]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"schedule": "linear"}, r"^unknown schedule 'linear' \(valid: cosine, step, constant\)$"),
        ({"label_smoothing": 1.5}, r"^--label-smoothing must be below 1 \(got 1\.5\)$"),
        ({"lr": float("inf")}, r"^--lr must be a finite number \(got inf\)$"),
        ({"lr": float("nan")}, r"^--lr must be a finite number \(got nan\)$"),
        ({"lr": -1.0}, r"^--lr must be above 0 \(got -1\.0\)$"),
        ({"epochs": 0}, r"^--epochs must be 1 or more \(got 0\)$"),
        ({"folds": "some"}, r"^--folds must be 'all' \(got 'some'\)$"),
        ({"sizes": [8, 12, 16]}, r"^sizes: 3 sizes for 2 epochs"),
        ({"colour": "red"}, r"^unknown training option 'colour'$"),
    ],
)
def test_bad_options_are_one_line(tiny: Path, overrides: dict, message: str) -> None:
    with pytest.raises(FlowError, match=message):
        build_config(open_workspace("tiny").comp, overrides)


def test_parse_sizes() -> None:
    assert parse_sizes("64, 128,224") == [64, 128, 224]
    with pytest.raises(FlowError, match="^--sizes takes pixel sizes"):
        parse_sizes("64,big")


def test_a_toml_recipe_with_a_bad_value_fails_when_loaded(tiny: Path) -> None:
    toml = tiny / "competitions" / "tiny.toml"
    toml.write_text(toml.read_text().replace("lr = 3e-3", "lr = -3e-3"))
    with pytest.raises(FlowError, match=r"tiny\.toml: key 'train\.lr': Input should be greater than 0 \(got -0\.003\)$"):
        open_workspace("tiny")


# --- whole runs ----------------------------------------------------------------------------------------


def test_seed_repeats_a_cpu_run_exactly(tiny: Path) -> None:
    ws = open_workspace("tiny")
    options = {"seed": 7, "preset": "affine", "mixup": 0.2}
    first = train.train(ws, options)
    second = train.train(ws, options)
    assert first.path != second.path
    assert first.metrics_file.read_text() == second.metrics_file.read_text()
    assert first.oof.read_text() == second.oof.read_text()
    other = train.train(ws, {**options, "seed": 8})
    assert other.metrics_file.read_text() != first.metrics_file.read_text()


def test_seed_repeats_a_run_with_worker_processes(tiny: Path) -> None:
    """Each worker reseeds its augmentations from (seed, epoch, worker): the same seed, the same run."""
    ws = open_workspace("tiny")
    options = {"seed": 3, "preset": "affine", "workers": 2, "epochs": 2}
    first, second = train.train(ws, options), train.train(ws, options)
    assert first.metrics_file.read_text() == second.metrics_file.read_text()
    in_process = train.train(ws, {**options, "workers": 0})
    assert json.loads(in_process.config_file.read_text())["workers"] == 0


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny: Path) -> None:
    ws = open_workspace("tiny")
    options = {"epochs": 3, "ema": 0.9, "preset": "affine", "mixup": 0.3}
    whole = train.train(ws, options)

    def stop_after_two(epoch: int, row: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match=r"^interrupted after epoch 2 of 3; continue with: flow train tiny --resume "):
        train.train(ws, options, on_epoch_end=stop_after_two)
    broken = next(r for r in (load_run(p) for p in ws.runs_dir.iterdir() if (p / "config.json").is_file()) if r.path != whole.path)
    assert broken.summary.status == "interrupted"
    assert len(pd.read_csv(broken.metrics_file)) == 2
    assert not list(broken.path.glob(".*.tmp"))
    saved = paddle.load(str(broken.last_state))
    assert list(saved) == ["config", "schedule", "ema", "scaler", "epoch", "best_score", "best_epoch", "stale", "stopped", "timing", "first_loss",
                           "best_loss", "tied_from"]
    last = LastState.load(broken.last_state, "tiny")
    assert last.as_dict().keys() == saved.keys() and last.config == saved["config"]
    assert (last.progress.epoch, last.progress.best_epoch, len(last.progress.timing)) == (2, saved["best_epoch"], 2)

    resumed = train.train(ws, resume=broken.name)
    assert resumed.path == broken.path
    assert broken.summary.status == "finished" and broken.summary.epochs_done == 3
    assert broken.metrics_file.read_text() == whole.metrics_file.read_text()
    assert not list(broken.path.glob(".*.tmp"))
    with pytest.raises(FlowError, match="already finished"):
        train.train(ws, resume=broken.name)


def test_processes_other_than_rank_0_write_and_print_nothing(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A data-parallel process other than rank 0 takes the run log's and checkpointer's calls and leaves no trace."""
    ws = open_workspace("tiny")
    run = train.train(ws, {"epochs": 1})
    before = {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()}
    capsys.readouterr()
    rank1 = Parallel(world=2, rank=1)
    log = RunLog.open(run, rank1)
    assert isinstance(log, QuietLog) and isinstance(RunLog.open(run, Parallel()), RunLog)
    progress = Progress(epoch=1, best_score=0.5, best_epoch=1)
    with log:
        log.info("not shown")
        log.epoch({"epoch": 2, "size": 16, "lr": 0.1, "train_loss": 1.0, "train_acc": 0.5}, True, 10.0)
        assert log.write_summary("interrupted", progress).status == "interrupted"
    Checkpointer(run, writes=False).save_best(paddle.nn.Linear(2, 2))
    assert capsys.readouterr() == ("", "")
    assert {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()} == before


def test_resume_validates_the_saved_config_again(tiny: Path) -> None:
    ws = open_workspace("tiny")
    run = train.train(ws, {"epochs": 1})
    config = json.loads(run.config_file.read_text())
    run.config_file.write_text(json.dumps({**config, "lr": "fast"}))
    with pytest.raises(FlowError, match=r"config\.json: key 'lr' input should be a valid number"):
        train.train(ws, resume=run.name)


def _spy_epochs(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Record, for each epoch, what the loop was given: rows per class, image size, mixed targets, loss."""
    seen: list[dict] = []
    real = fit.train_one_epoch

    def spy(state: loop.TrainState, loader, bar):  # type: ignore[no-untyped-def]
        images, labels = next(iter(loader))
        k = state.config.num_classes
        mixed_images, mixed = state.mixer(images, F.one_hot(labels.astype("int64").reshape([-1]), k))
        logits = paddle.to_tensor(np.random.default_rng(0).normal(size=(int(labels.shape[0]), k)).astype(np.float32))
        seen.append({
            "counts": np.bincount(loader.dataset.labels, minlength=k).tolist(),
            "size": int(images.shape[-1]),
            "steps": len(loader),
            "mixed": not np.isin(mixed.numpy(), [0.0, 1.0]).all(),
            "loss": float(state.loss_fn(logits, mixed)),
            "focal": float(optim.focal_loss(logits, mixed, state.config.focal_gamma)),
        })
        return real(state, loader, bar)

    monkeypatch.setattr(fit, "train_one_epoch", spy)
    return seen


def test_options_combine_and_each_takes_effect(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Label shuffling, progressive sizes, cutmix, the focal loss and patience in one run, each visible."""
    seen = _spy_epochs(monkeypatch)
    real_evaluate, evaluated = loop.evaluate, []

    def rising_loss(*args: object, **kwargs: object) -> loop.Evaluation:
        """lr 1e-9 moves the val loss only by BatchNorm's statistics; a tie of scores goes to a lower one: none here."""
        evaluated.append(1)
        return dataclasses.replace(real_evaluate(*args, **kwargs), loss=float(len(evaluated)))

    monkeypatch.setattr(fit, "evaluate", rising_loss)
    make_tiny(tiny, per_class=20)
    csv = tiny / "data/tiny/train.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if not ln.endswith(",2")][:30] + [ln for ln in lines[1:] if ln.endswith(",2")]) + "\n")
    ws = open_workspace("tiny")
    run = train.train(
        ws,
        {"epochs": 4, "lr": 1e-9, "patience": 1, "balance": True, "cutmix": 1.0, "loss": "focal", "focal_gamma": 1.5,
         "sizes": [12, 16], "schedule": "step", "optimizer": "sgd", "label_smoothing": 0.0, "batch_size": 8},
    )
    train_rows = len(pd.read_csv(ws.folds_file()).query("fold != 0"))
    assert seen[0]["counts"][0] == seen[0]["counts"][1] == seen[0]["counts"][2] > train_rows / 3  # padded to the largest
    assert [s["size"] for s in seen] == [12, 12, 16, 16][: len(seen)]
    assert seen[0]["steps"] == sum(seen[0]["counts"]) // 8
    assert any(s["mixed"] for s in seen)  # soft targets: cutmix mixed the labels with the pixels
    assert all(s["loss"] == pytest.approx(s["focal"], rel=1e-6) for s in seen)
    assert run.summary.status == "stopped early" and run.summary.epochs_done == len(seen) < 4
    assert run.config.balance and run.config.balance_reason == "--balance"


def test_max_params_refused_before_a_run_folder_exists(tiny: Path) -> None:
    ws = open_workspace("tiny")
    with pytest.raises(FlowError, match=r"^smallcnn has [\d,]+ parameters, over the competition's limit of 1,000"):
        train.train(ws, {"max_params": 1000})
    assert not ws.runs_dir.exists() or not [p for p in ws.runs_dir.iterdir() if p.is_dir() and p.name != "cache"]


def _two_folds(ws) -> None:  # type: ignore[no-untyped-def]
    from kaggle_flow.explore.split import make_folds, save_folds

    folds = make_folds(ws.table(quiet=True), folds=2, seed=0)
    save_folds(ws, folds, "2 stratified folds (seed 0)")


def test_folds_all_trains_every_fold_and_scores_out_of_fold(tiny: Path) -> None:
    ws = open_workspace("tiny")
    _two_folds(ws)
    parent = train.train(ws, {"folds": "all", "epochs": 1})
    assert parent.kind == "cv" and parent.name.endswith("-cv2")
    assert [f.id for f in parent.folds()] == [f"{parent.name}/fold0", f"{parent.name}/fold1"]
    oof = pd.read_csv(parent.oof)
    assert len(oof) == 60 and oof["id"].is_unique
    from kaggle_flow.metrics import METRICS

    assert parent.summary.cv_score == pytest.approx(METRICS["macro_f1"].of_labels(oof["label"].to_numpy(), oof["pred"].to_numpy(), 3))
    assert len(parent.summary.fold_scores) == 2
    runs = list_runs(ws.runs_dir)
    assert list(runs["run"]) == [parent.name] and runs.loc[0, "fold"] == "all (2)"
    assert resolve_run(ws, None, best=True).path == parent.path
    assert resolve_run(ws, f"{parent.name}/fold1").config.fold == 1


def test_resume_of_a_cross_validation_run(tiny: Path) -> None:
    """Finished folds are skipped, the interrupted fold continues, the result equals an uninterrupted run."""
    ws = open_workspace("tiny")
    _two_folds(ws)
    whole = train.train(ws, {"folds": "all", "epochs": 2})

    calls = []

    def stop_in_fold1(epoch: int, row: dict) -> None:
        calls.append(epoch)
        if len(calls) == 3:  # fold 0: epochs 1 and 2; fold 1: epoch 1
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match=r"^interrupted after epoch 1 of 2; .* --resume \S+-cv2(-\d+)?$"):
        train.train(ws, {"folds": "all", "epochs": 2}, on_epoch_end=stop_in_fold1)
    broken = next(r for r in (load_run(p) for p in ws.runs_dir.glob("*-cv2*")) if r.path != whole.path)
    fold0 = broken.folds()[0].best.stat().st_mtime_ns
    resumed = train.train(ws, resume=broken.name)
    assert resumed.path == broken.path
    assert broken.folds()[0].best.stat().st_mtime_ns == fold0  # not trained again
    for k in range(2):
        assert broken.folds()[k].metrics_file.read_text() == whole.folds()[k].metrics_file.read_text()
    assert broken.summary.cv_score == whole.summary.cv_score
    with pytest.raises(FlowError, match=r"a fold of a cross-validation run; resume the whole run: --resume "):
        train.train(ws, resume=f"{broken.name}/fold1")


def test_a_run_fits_only_its_competition(tiny: Path) -> None:
    ws = open_workspace("tiny")
    run = train.train(ws, {"epochs": 1})
    run.check_fits(ws.comp)
    digits = open_workspace("digits", remember_it=False).comp
    with pytest.raises(FlowError, match=rf"^{run.path}: a run of 'tiny', not of 'digits'$"):
        run.check_fits(digits)
    with pytest.raises(FlowError, match=r"^unknown run 'nope' in runs/tiny \(runs: "):
        resolve_run(ws, "nope")


# --- full refit, freezing, the time estimate ---------------------------------------------------------


def test_full_refit_trains_on_every_labelled_image_for_the_best_epoch(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = open_workspace("tiny")
    with pytest.raises(FlowError, match=r"no finished validated run to refit; train one first \(flow train tiny\), or give --epochs with --full$"):
        train.train(ws, {"full": True})
    source = train.train(ws, {"epochs": 3, "seed": 1})
    seen = _spy_epochs(monkeypatch)
    refit = train.train(ws, {"full": True})
    assert refit.kind == "full" and refit.config.full_from == source.id
    assert refit.config.epochs == source.summary.best_epoch == len(seen)
    assert sum(seen[0]["counts"]) == 60  # every labelled image, the validation fold included
    assert refit.config.seed == 1 and refit.config.auto["epochs"].startswith(f"{source.summary.best_epoch}: the best epoch of {source.id}")
    assert "val_loss" not in pd.read_csv(refit.metrics_file).columns and not refit.oof.exists()
    assert refit.validation_score() == source.summary.best_score
    assert resolve_run(ws, None, best=True).path == refit.path  # submitting the best recipe takes its refit
    assert list(list_runs(ws.runs_dir)["fold"]) == ["0", "full"]


def test_freeze_trains_only_the_head(tiny: Path) -> None:
    ws = open_workspace("tiny")
    start = train.train(ws, {"epochs": 1})
    before = paddle.load(str(start.best))
    frozen = train.train(ws, {"epochs": 2, "freeze": True, "weights": str(start.best)})
    after = paddle.load(str(frozen.best))
    changed = {k for k in before if not np.array_equal(np.asarray(before[k]), np.asarray(after[k]))}
    assert changed == {"fc.weight", "fc.bias"}  # BatchNorm statistics of the backbone stay too


def test_freeze_epochs_then_every_layer_trains(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainable: list[set[str]] = []
    real = fit.train_one_epoch

    def spy(state, loader, reporter):  # type: ignore[no-untyped-def]
        trainable.append({p.name for p in state.model.parameters() if not p.stop_gradient})
        return real(state, loader, reporter)

    monkeypatch.setattr(fit, "train_one_epoch", spy)
    train.train(open_workspace("tiny"), {"epochs": 3, "freeze_epochs": 1})
    assert len(trainable[0]) == 2 and len(trainable[1]) == len(trainable[2]) > 2


def test_the_time_estimate_and_progress_to_a_pipe(tiny: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = build_config(open_workspace("tiny").comp, {"epochs": 20})
    monkeypatch.delenv("FLOW_NO_PROGRESS", raising=False)
    reporter = loop.Reporter(config, 100, first_epoch=1, place="cpu", faster="--size 64, --epochs 10", every=0.0)
    reporter.start_epoch(1)
    assert reporter.wants(20, 1.0)
    reporter.step(20, 20 * 16, 30.0, "loss 0.5")  # 1.5 s a step: 2,000 steps take 50 min
    out = capsys.readouterr()
    assert "About 50 min for 20 epochs (11 images/s)" in out.out
    assert "Warning: about 50 min on the CPU; faster: --size 64, --epochs 10" in out.err
    assert "epoch 1/20  step 20/100  loss 0.5  11 img/s  about 50 min left" in out.err


BATCHNORM_NOTICE = "When training, we now always track global mean and variance."  # paddle.nn.BatchNorm, every step


def test_training_silences_paddles_batchnorm_notice_and_no_other_warning(tiny: Path) -> None:
    ws = open_workspace("tiny")
    with warnings.catch_warnings():
        warnings.resetwarnings()
        train.train(ws, {"epochs": 1})
        with warnings.catch_warnings(record=True) as shown:
            warnings.warn(BATCHNORM_NOTICE, UserWarning)
            warnings.warn("any other warning", UserWarning)
    assert [str(w.message) for w in shown] == ["any other warning"]
    with warnings.catch_warnings(record=True) as shown:
        warnings.resetwarnings()
        warnings.simplefilter("always")
        train_speed("resnet-t", size=16, batch_size=4, seconds=0.05)  # the automatic recipe measures before training
    assert BATCHNORM_NOTICE not in [str(w.message) for w in shown]


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "balanced_accuracy", "kappa"])
def test_chance_level_is_the_score_of_always_predicting_the_largest_class(metric: str) -> None:
    config = build_config(get_competition("digits"), {"epochs": 1}).model_copy(update={"metric": metric})
    labels = np.array([3] * 6 + [1] * 3 + [7])
    constant = METRICS[metric].of_labels(labels, np.full(10, 3), 10)
    assert chance_level(config, labels, constant) == (
        f"at chance level: the best {metric} {constant:.4f} is no better than always predicting the largest class '3' "
        f"({constant:.4f}); the model learned nothing"
    )
    assert chance_level(config, labels, constant + 0.01) == ""
    assert chance_level(config, labels, -math.inf) == ""  # no score at all: nothing to compare
    if metric == "accuracy":
        assert constant == 0.6  # the largest class's share
