"""Promises checked against figures computed here, apart from the code that keeps them: label smoothing
in a real training step, seeded shuffled folds, TTA as the mean of its views, renormalised submission
probabilities, zip slip inside nested zips, and the best checkpoint when the best epoch is not the last."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import fake_run, flow, one_line_error
from tiny_comp import make_tiny

from kaggle_flow.competition import load_file
from kaggle_flow.explore.split import make_folds
from kaggle_flow.submit.submission import write_submission


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path)  # scored by macro F1
    return tmp_path


# --- label smoothing reaches the loss --------------------------------------------------------------


def _targets_reaching_the_loss(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """The targets of every training step, as the loss function receives them."""
    from kaggle_flow.engine import fit

    targets: list[np.ndarray] = []
    real_epoch = fit.train_one_epoch

    def capture_targets(state, loader, reporter):  # type: ignore[no-untyped-def]
        loss_fn = state.loss_fn

        def recording(logits, batch_targets):  # type: ignore[no-untyped-def]
            targets.append(batch_targets.numpy().copy())
            return loss_fn(logits, batch_targets)

        state.loss_fn = recording
        return real_epoch(state, loader, reporter)

    monkeypatch.setattr(fit, "train_one_epoch", capture_targets)
    return targets


def test_label_smoothing_reaches_the_loss_of_a_real_training_step(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kaggle_flow.engine import train
    from kaggle_flow.workspace import open_workspace

    eps, k = 0.2, 3
    targets = _targets_reaching_the_loss(monkeypatch)
    train.train(open_workspace("tiny"), {"epochs": 1, "label_smoothing": eps, "mixup": 0.0, "cutmix": 0.0})
    first = targets[0]
    assert first.shape[1] == k and len(first) > 1
    on, off = 1 - eps + eps / k, eps / k  # the true class, every other class
    for row in first:
        assert np.isclose(row, on, atol=1e-6).sum() == 1 and np.isclose(row, off, atol=1e-6).sum() == k - 1, row
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-6)


def test_mixup_targets_reach_the_loss_smoothed(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under --mixup the loss gets lam x one label + (1 - lam) x another, then smoothed: (1 - eps) x that + eps / K."""
    from kaggle_flow.engine import train
    from kaggle_flow.workspace import open_workspace

    eps, k = 0.1, 3
    targets = _targets_reaching_the_loss(monkeypatch)
    train.train(open_workspace("tiny"), {"epochs": 1, "label_smoothing": eps, "mixup": 1.0, "cutmix": 0.0})
    mixed = (np.concatenate(targets) - eps / k) / (1 - eps)  # the targets before smoothing
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-5)
    assert (mixed > -1e-5).all() and ((mixed > 1e-5).sum(axis=1) <= 2).all()  # at most two labels in a row
    assert ((mixed > 1e-3) & (mixed < 1 - 1e-3)).any(axis=1).mean() > 0.5  # most rows are mixed


# --- folds follow their seed ------------------------------------------------------------------------


def _sorted_table(per_class: int = 40, classes: int = 3) -> pd.DataFrame:
    """A table sorted by label, then by source (as a download listing folder by folder gives it)."""
    labels = np.repeat(np.arange(classes), per_class)
    ids = [f"c{lab}/src{i // 10}_{i:03d}.png" for lab in range(classes) for i in range(per_class)]
    return pd.DataFrame({"id": ids, "path": ids, "label": labels, "split": "train"})


def _contiguous(positions: np.ndarray) -> bool:
    return bool(len(positions)) and positions.max() - positions.min() + 1 == len(positions)


def test_folds_follow_the_seed_and_no_fold_is_a_block_of_a_sorted_table() -> None:
    table = _sorted_table()
    one, again, two = (make_folds(table, folds=5, seed=s) for s in (1, 1, 2))
    assert one["fold"].tolist() == again["fold"].tolist()
    assert one["fold"].tolist() != two["fold"].tolist()
    for folds in (one, two):
        assert sorted(np.bincount(folds["fold"])) == [24] * 5  # 8 of each class in every fold
        for label in range(3):
            in_class = folds[folds["label"] == label]["fold"].to_numpy()
            for k in range(5):
                positions = np.flatnonzero(in_class == k)
                assert len(positions) == 8
                assert not _contiguous(positions), f"fold {k} is rows {positions.min()}-{positions.max()} of class {label}"


def test_the_hold_out_follows_the_seed() -> None:
    table = _sorted_table()
    one, two = (make_folds(table, val_size=0.2, seed=s) for s in (1, 2))
    assert one["fold"].tolist() != two["fold"].tolist()
    for label in range(3):
        held = np.flatnonzero(one[one["label"] == label]["fold"].to_numpy() == 0)
        assert len(held) == 8 and not _contiguous(held)


# --- TTA is the mean of the plain and the mirrored prediction -------------------------------------


def test_tta_is_the_mean_of_the_image_and_its_mirror(workdir: Path) -> None:
    import paddle
    import paddle.nn.functional as F

    from kaggle_flow.data.loader import eval_loader
    from kaggle_flow.models import create_model
    from kaggle_flow.submit.predict import predict_probs
    from kaggle_flow.workspace import open_workspace

    run = fake_run(workdir / "runs/digits", "flips", seed=5, preset="medium")  # medium flips: TTA adds the mirror
    table = open_workspace("digits", remember_it=False).table()
    rows = table[table["split"] == "test"].head(12).reset_index(drop=True)
    config = run.config
    model = create_model(config.model, config.num_classes, in_channels=config.channels, image_size=config.image_size)
    model.set_state_dict(paddle.load(str(run.best)))
    model.eval()
    (images, _), = list(eval_loader(rows, config, 64, run.cache_dir, report=False))
    images = images.numpy()  # N, C, H, W: normalised, at the run's size

    def softmax(batch: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return F.softmax(model(paddle.to_tensor(np.ascontiguousarray(batch))), axis=1).numpy()

    plain, mirrored = softmax(images), softmax(np.flip(images, axis=3))
    assert not np.allclose(plain, mirrored, atol=1e-4)  # the mirror changes the prediction: the test can tell
    tta = predict_probs(run, rows, tta=True)
    np.testing.assert_allclose(tta, (plain + mirrored) / 2, atol=1e-5)
    np.testing.assert_allclose(tta.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(predict_probs(run, rows), plain, atol=1e-5)


# --- submissions: probabilities renormalised -------------------------------------------------------


def _comp(root: Path, name: str, metric: str, kind: str):  # type: ignore[no-untyped-def]
    file = root / "competitions" / f"{name}.toml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(
        f'title = "{name}"\nclasses = ["no", "yes"]\nmetric = "{metric}"\n'
        f'\n[layout]\nkind = "csv"\ntrain_csv = "train.csv"\n\n[submission]\nkind = "{kind}"\n'
    )
    return load_file(file)


@pytest.mark.parametrize(("kind", "metric"), [("probability", "auc"), ("probabilities", "logloss"), ("probabilities", "mean_auc")])
def test_submitted_probabilities_are_renormalised(tmp_path: Path, kind: str, metric: str) -> None:
    comp = _comp(tmp_path, f"binary_{metric}", metric, kind)
    test = pd.DataFrame({"id": ["a.jpg", "b.jpg"], "split": "test"})
    probs = np.array([[2.0, 6.0], [3.0, 1.0]])
    path, _ = write_submission(comp, test, probs, None, submissions_dir=tmp_path / "subs", name="r", when=0)
    written = pd.read_csv(path)
    if kind == "probability":
        assert written["label"].tolist() == [0.75, 0.25]
    else:
        assert written[["no", "yes"]].to_numpy().tolist() == [[0.25, 0.75], [0.75, 0.25]]


# --- zip slip inside nested zips -------------------------------------------------------------------


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


CLIMBS = ["../../escaped.csv", "../../../../escaped.csv"]  # out of the nested zip's folder; out of the whole outline or staging


def _evil_train_zip(path: Path, entry: str) -> Path:
    """An older Kaggle download's train.zip with one entry that climbs out of where it unpacks."""
    return _zip(path, {"train/0.png": b"x", entry: b"id,label\n0.png,0\n"})


@pytest.fixture
def deep_temp(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temp folders two levels below the working folder: whatever an entry climbs to lands in it, where it is seen."""
    temp = workdir / "t" / "mp"
    temp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return workdir / "src"


def _nothing_escaped(workdir: Path) -> None:
    found = [Path(folder, "escaped.csv") for folder, _, files in os.walk(workdir) if "escaped.csv" in files]
    assert found == []  # os.walk does not follow data/'s links to the embedded competitions


@pytest.mark.parametrize("entry", CLIMBS)
def test_init_from_a_zip_refuses_slip_inside_its_nested_zip(deep_temp: Path, workdir: Path, entry: str) -> None:
    evil = _evil_train_zip(deep_temp / "parts" / "train.zip", entry)
    download = _zip(deep_temp / "download.zip", {"train.zip": evil.read_bytes(), "sample_submission.csv": b"id,label\n"})
    line = one_line_error(flow("init", "evil", "--from", download))
    download = download.relative_to(workdir)  # as the command was given it
    assert line == f"Error: {download}/train.zip: entry '{entry}' would land outside {download}/train; refused"
    _nothing_escaped(workdir)
    assert not (workdir / "competitions").exists()


@pytest.mark.parametrize("entry", CLIMBS)
def test_init_from_a_folder_of_zips_refuses_slip_inside_them(deep_temp: Path, workdir: Path, entry: str) -> None:
    folder = deep_temp / "download"
    _evil_train_zip(folder / "train.zip", entry)
    line = one_line_error(flow("init", "evil", "--from", folder))
    folder = folder.relative_to(workdir)
    assert line == f"Error: {folder}/train.zip: entry '{entry}' would land outside {folder}/train; refused"
    _nothing_escaped(workdir)
    assert not (workdir / "competitions").exists()


@pytest.mark.parametrize("entry", CLIMBS)
def test_import_refuses_slip_inside_a_nested_zip(deep_temp: Path, workdir: Path, entry: str) -> None:
    evil = _evil_train_zip(deep_temp / "parts" / "train.zip", entry)
    download = _zip(deep_temp / "lemon.zip", {"train.zip": evil.read_bytes()})
    line = one_line_error(flow("import", "lemon", download))
    download = download.relative_to(workdir)
    assert line == f"Error: {download}/train.zip: entry '{entry}' would land outside {download}; refused"
    _nothing_escaped(workdir)
    assert sorted(p.name for p in (workdir / "data").iterdir()) == ["digits", "mnist"]


# --- the best checkpoint when the best epoch comes before the last ----------------------------------


def test_best_weights_are_the_best_epochs_when_a_later_epoch_is_worse(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Epoch 1 is made the best (later epochs' macro F1 is lowered by 10): best.pdparams must hold epoch 1's
    weights, so predicting the validation fold with them gives epoch 1's validation loss, not the last epoch's."""
    from kaggle_flow.engine import fit, train
    from kaggle_flow.explore.split import load_folds, train_val
    from kaggle_flow.submit.predict import predict_probs
    from kaggle_flow.workspace import open_workspace

    real_validate, losses = fit._validate, []

    def first_epoch_best(state, data):  # type: ignore[no-untyped-def]
        evaluation = real_validate(state, data)
        losses.append(evaluation.loss)
        return evaluation if len(losses) == 1 else dataclasses.replace(evaluation, metric=evaluation.metric - 10)

    monkeypatch.setattr(fit, "_validate", first_epoch_best)
    ws = open_workspace("tiny")
    run = train.train(ws, {"epochs": 3, "ema": 0.0})
    assert run.summary.best_epoch == 1 and len(losses) == 3
    assert not np.isclose(losses[0], losses[-1], atol=1e-3)  # the last epoch's weights would tell
    table = ws.table()
    _, val = train_val(table, load_folds(ws, table), 0)
    probs = predict_probs(run, val)
    labels = val["label"].to_numpy(dtype=int)
    assert -np.log(probs[np.arange(len(labels)), labels]).mean() == pytest.approx(losses[0], abs=1e-4)


# --- the recipe inside a real run: the LR of every step, Adam's update, the EMA kept as best ------------


@dataclasses.dataclass
class Steps:
    """What each optimizer step of a run saw: its lr, the parameters before, their gradients, after."""

    lrs: list[float] = dataclasses.field(default_factory=list)
    before: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)
    grads: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)
    after: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)
    epoch_ends: list[int] = dataclasses.field(default_factory=list)  # steps taken when each epoch ended


def _record_steps(monkeypatch: pytest.MonkeyPatch) -> Steps:
    from kaggle_flow.engine import fit

    seen, real_epoch = Steps(), fit.train_one_epoch

    def spy(state, loader, reporter):  # type: ignore[no-untyped-def]
        optimizer = state.optimizer
        if "step" not in vars(optimizer):  # once per run: the optimizer outlives its epochs
            params, real_step = dict(state.model.named_parameters()), optimizer.step

            def step() -> None:
                seen.lrs.append(float(optimizer.get_lr()))
                seen.before.append({k: p.numpy().copy() for k, p in params.items()})
                seen.grads.append({k: p.grad.numpy().copy() for k, p in params.items() if p.grad is not None})
                real_step()
                seen.after.append({k: p.numpy().copy() for k, p in params.items()})

            optimizer.step = step
        result = real_epoch(state, loader, reporter)
        seen.epoch_ends.append(len(seen.lrs))
        return result

    monkeypatch.setattr(fit, "train_one_epoch", spy)
    return seen


def test_the_lr_of_every_step_is_warmup_then_cosine(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear from 0 over warmup_epochs x steps, then half a cosine to 0 at the last step of the last epoch."""
    import math

    from kaggle_flow.engine import train
    from kaggle_flow.workspace import open_workspace

    seen = _record_steps(monkeypatch)
    lr = 4e-3
    train.train(open_workspace("tiny"), {"epochs": 2, "batch_size": 8, "lr": lr, "schedule": "cosine", "warmup_epochs": 0.5})
    per_epoch = seen.epoch_ends[0]
    total, warmup = 2 * per_epoch, round(0.5 * per_epoch)
    assert per_epoch >= 4 and seen.epoch_ends == [per_epoch, total] and warmup >= 2
    want = [lr * s / warmup if s < warmup else lr * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))
            for s in range(total)]
    assert seen.lrs == pytest.approx(want, abs=1e-10)
    assert all(np.array_equal(seen.before[0][k], seen.after[0][k]) for k in seen.before[0])  # lr 0: the first step moves nothing


def test_adam_moves_the_weights_as_its_update_rule_with_the_given_lr(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adam (beta1 0.9, beta2 0.999, eps 1e-8) at --lr, its moments carried from step to step, in a real run."""
    from kaggle_flow.engine import train
    from kaggle_flow.workspace import open_workspace

    seen = _record_steps(monkeypatch)
    lr = 2e-3
    train.train(open_workspace("tiny"), {"epochs": 1, "batch_size": 8, "lr": lr, "schedule": "constant", "warmup_epochs": 0,
                                         "optimizer": "adam", "weight_decay": 0.0})
    assert seen.lrs[:4] == pytest.approx([lr] * 4)
    m = {k: np.zeros_like(g, dtype=np.float64) for k, g in seen.grads[0].items()}
    v = {k: np.zeros_like(g, dtype=np.float64) for k, g in seen.grads[0].items()}
    for t in range(1, 5):
        for key, g in seen.grads[t - 1].items():
            m[key] = 0.9 * m[key] + 0.1 * g
            v[key] = 0.999 * v[key] + 0.001 * g.astype(np.float64) ** 2
            update = lr * (m[key] / (1 - 0.9**t)) / (np.sqrt(v[key] / (1 - 0.999**t)) + 1e-8)
            np.testing.assert_allclose(seen.before[t - 1][key] - seen.after[t - 1][key], update, rtol=2e-3, atol=1e-7,
                                       err_msg=f"step {t}, {key}")


def test_the_ema_of_every_step_is_what_validates_and_is_kept_as_best(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--ema D: after update n the average is d x average + (1 - d) x weights, d = min(D, (1 + n) / (10 + n)),
    from the initial weights; best.pdparams holds the average at the end of the best epoch, not the weights."""
    import paddle

    from kaggle_flow.engine import train
    from kaggle_flow.workspace import open_workspace

    seen = _record_steps(monkeypatch)
    decay = 0.8
    run = train.train(open_workspace("tiny"), {"epochs": 2, "batch_size": 8, "ema": decay})
    # the trained parameters (BatchNorm's statistics move in the forward pass, before the first step is seen)
    average = {k: seen.before[0][k].astype(np.float64) for k in seen.grads[0]}
    at_epoch_end = []
    for n, weights in enumerate(seen.after, start=1):
        d = min(decay, (1 + n) / (10 + n))
        average = {k: d * average[k] + (1 - d) * weights[k] for k in average}
        if n in seen.epoch_ends:
            at_epoch_end.append(average)
    best = paddle.load(str(run.best))
    expected, raw = at_epoch_end[run.summary.best_epoch - 1], seen.after[seen.epoch_ends[run.summary.best_epoch - 1] - 1]
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(best[key]), value, rtol=1e-4, atol=1e-6, err_msg=key)
    assert any(not np.allclose(np.asarray(best[k]), raw[k], atol=1e-5) for k in raw)  # the average, not the weights
