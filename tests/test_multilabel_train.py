"""Multi-label training: a sigmoid head, BCE / focal / ASL, oof.csv of label sets, thresholds fitted after training,
with EMA, mixup and cutmix, resume and two processes as a single-label run has them.

The competition is generated here: 16x16 grey images holding 0-2 handwritten digits (scikit-learn's
8x8 digits, the embedded `digits` data) in random cells of a 2x2 grid; its classes are the digits
that appear, so only the pixels tell them. train.csv `id,labels` holds them space-separated, as
Kaggle's multi-label downloads do; `flow split` makes the folds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pandas as pd
import pytest
from clitools import ctrl_c_in_second_epoch, flow, one_line_error
from PIL import Image

from kaggle_flow.engine import fit
from kaggle_flow.oof import read_oof
from kaggle_flow.runs import load_run
from kaggle_flow.target import TARGETS

DIGITS = (0, 1, 3, 7)  # the classes: which of these digits an image holds
N_TRAIN, N_TEST = 240, 12

TOML = f"""title = "digits side by side"
classes = {[str(d) for d in DIGITS]}
target = "multi"
metric = "mean_f2"
image_size = 16
channels = 1
mean = [0.5]
std = [0.25]

[layout]
kind = "csv"
train_csv = "train.csv"
label_column = "labels"
train_dir = "train"
test_dir = "test"

[train]
model = "smallcnn"
epochs = 2
batch_size = 16
lr = 3e-3
warmup_epochs = 0.5
preset = "none"
"""


def _composite(rng: np.random.Generator, pools: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """A 16x16 image with 1-2 digits of distinct classes, each in a random cell; the classes it holds."""
    canvas = rng.normal(20, 8, (16, 16))
    count = int(rng.choice([1, 2]))
    classes = sorted(rng.choice(len(DIGITS), size=count, replace=False).tolist())
    cells = rng.choice(4, size=count, replace=False)
    for k, cell in zip(classes, cells):
        digit = pools[k][rng.integers(len(pools[k]))]
        y, x = 8 * (cell // 2), 8 * (cell % 2)
        canvas[y : y + 8, x : x + 8] = np.maximum(canvas[y : y + 8, x : x + 8], digit)
    return np.clip(canvas, 0, 255).astype(np.uint8), classes


def make_composites(root: Path) -> pd.DataFrame:
    """competitions/tags.toml and data/tags under `root`; the canonical table of the images written."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0))
    pools = [images[digits.target == d] for d in DIGITS]
    (root / "competitions").mkdir(exist_ok=True)
    (root / "competitions" / "tags.toml").write_text(TOML)
    data = root / "data" / "tags"
    rng = np.random.default_rng(0)
    rows = []
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        (data / split).mkdir(parents=True)
        for i in range(n):
            image, classes = _composite(rng, pools)
            path = data / split / f"{split}_{i:03d}.png"
            Image.fromarray(image).save(path)
            labels = " ".join(map(str, classes)) if split == "train" else pd.NA
            rows.append({"id": path.name, "path": str(path), "labels": labels, "split": split})
    table = pd.DataFrame(rows)
    table[table["split"] == "train"][["id", "labels"]].to_csv(data / "train.csv", index=False)
    table["labels"] = table["labels"].astype("string")
    return table


@pytest.fixture
def tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """A working directory with the generated competition, its table as written, 2 folds."""
    monkeypatch.chdir(tmp_path)
    table = make_composites(tmp_path)
    assert flow("split", "tags", "--folds", "2").exit_code == 0
    return table


def _run() -> Path:
    """The newest run folder of the competition."""
    return sorted(p.parent for p in (Path("runs") / "tags").glob("*/config.json"))[-1]


def test_a_multi_label_run_trains_on_sets_and_fits_thresholds_on_its_out_of_fold_predictions(tags: pd.DataFrame) -> None:
    result = flow("train", "tags")
    assert result.exit_code == 0, result.output
    run = load_run(_run())
    assert run.config.target == "multi" and run.config.loss == "bce"  # the target's default loss
    table = tags.set_index("id")
    oof = read_oof(run.oof, 4, TARGETS["multi"])
    truth = TARGETS["multi"].encode(table.loc[oof.ids].reset_index(), 4)
    assert oof.labels.tolist() == truth.tolist()  # label sets, "0 3" cells, as the table holds them
    cells = pd.read_csv(run.oof, dtype=str, keep_default_na=False)["label"]
    assert any(" " in c for c in cells) and all(c != "" for c in cells)  # every image holds a digit
    assert not np.allclose(oof.probs.sum(axis=1), 1.0)  # a sigmoid each class, not a softmax
    metrics = pd.read_csv(run.metrics_file)
    assert len(metrics) == 2 and (metrics["size"] == 16).all()
    best = metrics.loc[metrics["epoch"] == run.summary.best_epoch].iloc[0]
    assert best["val_loss"] == pytest.approx(TARGETS["multi"].val_loss(oof.labels, oof.probs), rel=1e-3)  # binary cross entropy
    assert best["val_loss"] < np.log(2) < np.log(4)  # below a coin-flip per class; a softmax over 4 would start at ln 4
    assert "val_label_acc" in result.output
    from kaggle_flow.thresholds import read_thresholds

    found = read_thresholds(run.path)
    assert found is not None and len(found.values) == 4
    assert found.score >= found.score_at_half
    assert f"mean_f2 {found.score_at_half:.4f} at 0.5, {found.score:.4f} at the fitted thresholds" in result.output
    assert "precision" in result.output and (run.path / "precision_recall.png").is_file()
    assert not run.confusion.is_file()

    reviewed = flow("review", "tags")  # the sets reviewed: losses averaged over the classes, cleanlab's multi-label issues
    assert reviewed.exit_code == 0, reviewed.output
    issues = pd.read_csv(run.path / "review" / "label_issues.csv", dtype=str, keep_default_na=False)
    names = dict(zip(oof.ids, (TARGETS["multi"].describe(TARGETS["multi"].format(row), [str(d) for d in DIGITS]) for row in oof.labels)))
    assert (issues["label"] == issues["id"].map(names)).all()  # each issue's given set, by class names
    assert (run.path / "review" / "top_losses.png").is_file() and not (run.path / "review" / "confused.png").exists()


@pytest.mark.parametrize("loss", ["focal", "asl"])
def test_focal_and_asymmetric_losses_train_a_multi_label_run(tags: pd.DataFrame, loss: str) -> None:
    result = flow("train", "tags", "--loss", loss, "--epochs", "1")
    assert result.exit_code == 0, result.output
    run = load_run(_run())
    assert run.config.loss == loss
    assert np.isfinite(pd.read_csv(run.metrics_file)["train_loss"]).all()


def test_cross_validation_fits_the_thresholds_on_every_fold_s_predictions(tags: pd.DataFrame) -> None:
    result = flow("train", "tags", "--folds", "all", "--epochs", "1", "--label-smoothing", "0.1", "--mixup", "0.4", "--lr", "1e-3")
    assert result.exit_code == 0, result.output
    run = load_run(_run())
    oof = read_oof(run.oof, 4, TARGETS["multi"])
    assert len(oof) == N_TRAIN
    from kaggle_flow.thresholds import read_thresholds

    found = read_thresholds(run.path)
    assert found is not None and found.score >= found.score_at_half
    assert f"Thresholds fitted on {N_TRAIN} out-of-fold predictions" in result.output
    # the CV score is the out-of-fold predictions' at their best global threshold, as each fold's epochs are scored
    from kaggle_flow.metrics import METRICS

    summary = run.summary
    at_grid = [METRICS["mean_f2"].of_labels(oof.labels, (oof.probs >= t).astype(int), 4) for t in np.arange(0.05, 0.951, 0.05)]
    assert summary.cv_score == pytest.approx(max(at_grid)) and summary.cv_score >= found.score_at_half
    assert max(at_grid) > at_grid[9]  # 0.5 (at_grid[9]) is not the best cut here
    # the folds' test predictions are averaged as probabilities, before any threshold decides
    from kaggle_flow.submit.predict import predict_probs

    test = tags[tags["split"] == "test"]
    probs = predict_probs(run, test)
    folds = [predict_probs(f, test) for f in run.folds()]
    np.testing.assert_allclose(probs, np.mean(folds, axis=0), rtol=1e-5)
    assert ((probs > 0) & (probs < 1)).all() and not np.allclose(probs.sum(axis=1), 1.0)
    # a full refit decides at the thresholds of the validated run it refits
    refit = flow("train", "tags", "--full")
    assert refit.exit_code == 0, refit.output
    kept = read_thresholds(_run())
    assert kept is not None and kept.values.tolist() == found.values.tolist()


def test_a_multi_label_run_with_ema_mixup_and_cutmix_resumes_to_the_weights_of_the_run_never_stopped(
    tags: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = ("--ema", "0.99", "--mixup", "0.2", "--cutmix", "1.0")
    result = flow("train", "tags", *flags)
    assert result.exit_code == 0, result.output
    whole = load_run(_run())
    assert (whole.config.ema, whole.config.mixup, whole.config.cutmix) == (0.99, 0.2, 1.0)
    oof = read_oof(whole.oof, 4, TARGETS["multi"])
    assert oof.labels.tolist() == TARGETS["multi"].encode(tags.set_index("id").loc[oof.ids].reset_index(), 4).tolist()
    assert (whole.path / "thresholds.json").is_file()

    real = ctrl_c_in_second_epoch(monkeypatch)
    stopped = flow("train", "tags", *flags)
    assert stopped.exit_code == 1 and "interrupted after epoch 1 of 2" in stopped.output, stopped.output
    monkeypatch.setattr(fit, "train_one_epoch", real)
    broken = _run()
    assert broken != whole.path and not (broken / "thresholds.json").exists()
    resumed = flow("train", "tags", "--resume", broken.name)
    assert resumed.exit_code == 0, resumed.output
    for name in ("best.pdparams", "last.pdparams"):
        a, b = paddle.load(str(whole.path / name)), paddle.load(str(broken / name))
        assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a), name
    for name in ("metrics.csv", "oof.csv", "thresholds.json"):
        assert (broken / name).read_text() == (whole.path / name).read_text(), name


def test_two_processes_train_a_multi_label_run_and_fit_its_thresholds(tags: pd.DataFrame) -> None:
    result = flow("train", "tags", "--epochs", "1", "--nproc", "2")
    assert result.exit_code == 0, result.output
    run = load_run(_run())
    assert (run.config.nproc, run.config.world_size) == (2, 2)
    folds = pd.read_csv(Path("runs") / "tags" / "folds.csv")
    oof = read_oof(run.oof, 4, TARGETS["multi"])
    assert sorted(oof.ids) == sorted(folds.loc[folds["fold"] == 0, "id"])  # both processes' validation rows, gathered
    assert oof.labels.tolist() == TARGETS["multi"].encode(tags.set_index("id").loc[oof.ids].reset_index(), 4).tolist()
    from kaggle_flow.thresholds import read_thresholds

    found = read_thresholds(run.path)
    assert found is not None and len(found.values) == 4
    assert 0 <= run.summary.best_score <= 1 and 0 <= found.score <= 1


def test_a_loss_of_the_other_target_is_one_line_naming_the_valid_ones(tags: pd.DataFrame) -> None:
    line = one_line_error(flow("train", "tags", "--loss", "ce"))
    assert line.endswith("--loss ce is not a loss for multi-label competitions (target = \"multi\"): use bce, focal, asl")


def test_a_multi_label_loss_for_one_label_an_image_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiny_comp import make_tiny

    monkeypatch.chdir(tmp_path)
    make_tiny(tmp_path)
    line = one_line_error(flow("train", "tiny", "--loss", "asl"))
    assert line.endswith("--loss asl is not a loss for single-label competitions (target = \"single\"): use ce, weighted, focal")


def test_multi_label_smoothing_pulls_each_class_towards_a_half() -> None:
    import paddle

    multi = TARGETS["multi"]
    targets = multi.batch_targets(paddle.to_tensor(np.array([[1, 0, 1]], dtype=np.float32)), 3)
    assert multi.smooth(targets, 0.2).numpy()[0].tolist() == pytest.approx([0.9, 0.1, 0.9])


def test_asymmetric_and_focal_losses_are_binary_cross_entropy_without_their_focusing() -> None:
    import paddle

    from kaggle_flow.engine import optim

    rng = np.random.default_rng(0)
    logits = paddle.to_tensor(rng.normal(0, 2, (6, 4)).astype(np.float32))
    q = paddle.to_tensor((rng.random((6, 4)) > 0.5).astype(np.float32))
    bce = float(optim.binary_cross_entropy(logits, q))
    assert float(optim.asymmetric_loss(logits, q, gamma_neg=0, gamma_pos=0, clip=0)) == pytest.approx(bce, rel=1e-5)
    assert float(optim.sigmoid_focal_loss(logits, q, gamma=0)) == pytest.approx(bce, rel=1e-5)
    # ASL's defaults weigh the easy negatives down: under the BCE of the same predictions
    assert float(optim.asymmetric_loss(logits, q)) < bce


def test_planted_multi_label_errors_rank_first_among_cleanlabs_issues() -> None:
    """Sets a confident model disagrees with (a class added or dropped) are the likeliest label errors."""
    from kaggle_flow.oof import OutOfFold
    from kaggle_flow.submit.review import label_issues, top_losses

    rng = np.random.default_rng(0)
    truth = (rng.random((300, 4)) < 0.35).astype(np.uint8)
    probs = np.clip(np.where(truth == 1, 0.9, 0.1) + rng.normal(0, 0.05, truth.shape), 0.01, 0.99)
    given = truth.copy()
    given[:12, 2] = 1 - given[:12, 2]  # twelve labels planted wrong: class 2 added or dropped
    oof = OutOfFold(np.array([f"im{i}" for i in range(300)]), given, (probs >= 0.5).astype(np.uint8), probs)
    issues = label_issues(oof, ["a", "b", "c", "d"])
    planted = {f"im{i}" for i in range(12)}
    assert len(set(issues["id"].head(12)) & planted) >= 10  # a random ranking finds about 0.5 of them
    first = int(issues["id"].iloc[0].removeprefix("im"))
    assert issues["suggested"].iloc[0] == TARGETS["multi"].describe(TARGETS["multi"].format(truth[first]), ["a", "b", "c", "d"])
    losses = top_losses(oof, ["a", "b", "c", "d"], 12)
    assert set(losses["id"]) == {f"im{i}" for i in range(12)}  # the highest summed cross entropies
