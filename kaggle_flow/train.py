"""The training loop: a competition's recipe, overridden by flags, into a run folder.

Read it top to bottom:

1. `resolve_config`: the competition's Recipe, overridden by the flags, plus the competition facts
   (classes, size, channels, mean/std); saved as config.json and inside every checkpoint.
2. `train`: the folds to train (one, or all for cross-validation), each through `fit`.
3. `fit`: model, optimizer, schedule, loss, EMA; then per epoch: the image size (progressive
   resizing), the rows (label shuffling redraws them), the steps (mixup/cutmix, label smoothing,
   AMP), validation, the best and the last checkpoint; finally oof.csv, plots and summary.json.

Every random draw of an epoch is seeded from (seed, epoch): paddle (dropout), the sampling order,
the augmentations, mixup/cutmix. A run is therefore repeatable on CPU, and `--resume` replays the
remaining epochs exactly as an uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F
import pandas as pd

from kaggle_flow import console
from kaggle_flow.errors import FlowError
from kaggle_flow.fileio import atomic_path, write_csv, write_json
from kaggle_flow.runs import fold_dirs, load_config, new_run_dir, resolve_run

# --- registries: optimizers, schedules, losses ------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A named option of the training recipe."""

    name: str
    description: str


OPTIMIZERS = {
    c.name: c
    for c in [
        Choice("adam", "Adam; weight decay as L2 on the gradients"),
        Choice("adamw", "AdamW: Adam with decoupled weight decay"),
        Choice("sgd", "SGD with momentum 0.9; weight decay as L2"),
    ]
}
SCHEDULES = {
    c.name: c
    for c in [
        Choice("cosine", "cosine decay to 0 over the run, stepped per iteration"),
        Choice("step", "StepDecay: x0.1 after each third of the run"),
        Choice("constant", "the same learning rate throughout"),
    ]
}
LOSSES = {
    c.name: c
    for c in [
        Choice("ce", "cross entropy on (smoothed, mixed) soft labels"),
        Choice("weighted", "cross entropy weighted by inverse class frequency"),
        Choice("focal", "focal loss: cross entropy scaled by (1 - p)^gamma"),
    ]
}


def _get(registry: dict[str, Choice], what: str, name: str) -> Choice:
    if name not in registry:
        raise FlowError(f"unknown {what} '{name}' (valid: {', '.join(registry)})")
    return registry[name]


def list_optimizers() -> list[Choice]:
    return list(OPTIMIZERS.values())


def list_schedules() -> list[Choice]:
    return list(SCHEDULES.values())


def list_losses() -> list[Choice]:
    return list(LOSSES.values())


def get_optimizer(name: str) -> Choice:
    return _get(OPTIMIZERS, "optimizer", name)


def get_schedule(name: str) -> Choice:
    return _get(SCHEDULES, "schedule", name)


def get_loss(name: str) -> Choice:
    return _get(LOSSES, "loss", name)


def build_schedule(
    name: str, lr: float, *, total_steps: int, warmup_steps: int
) -> paddle.optimizer.lr.LRScheduler:
    """A paddle LR scheduler stepped once per iteration.

    cosine: lr(s) = lr * s / W for s < W, then lr * (1 + cos(pi * (s - W) / (T - W))) / 2.
    step: lr * 0.1 ** (number of thirds of T - W passed). constant: lr. Warmup (W > 0) is linear from 0.
    """
    get_schedule(name)
    W, T = max(0, warmup_steps), max(1, total_steps)
    W = min(W, T - 1) if T > 1 else 0
    after = max(1, T - W)
    if name == "cosine":
        inner: paddle.optimizer.lr.LRScheduler = paddle.optimizer.lr.CosineAnnealingDecay(lr, T_max=after)
    elif name == "step":
        inner = paddle.optimizer.lr.StepDecay(lr, step_size=max(1, math.ceil(after / 3)), gamma=0.1)
    else:
        inner = paddle.optimizer.lr.LambdaDecay(lr, lr_lambda=lambda _step: 1.0)
    if W == 0:
        return inner
    return paddle.optimizer.lr.LinearWarmup(inner, warmup_steps=W, start_lr=0.0, end_lr=lr)


def build_optimizer(
    name: str, schedule: paddle.optimizer.lr.LRScheduler, parameters: Any, weight_decay: float
) -> paddle.optimizer.Optimizer:
    get_optimizer(name)
    if name == "adamw":
        return paddle.optimizer.AdamW(learning_rate=schedule, parameters=parameters, weight_decay=weight_decay)
    decay = weight_decay or None
    if name == "sgd":
        return paddle.optimizer.Momentum(learning_rate=schedule, momentum=0.9, parameters=parameters, weight_decay=decay)
    return paddle.optimizer.Adam(learning_rate=schedule, parameters=parameters, weight_decay=decay)


LossFn = Callable[[paddle.Tensor, paddle.Tensor], paddle.Tensor]


def soft_cross_entropy(logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
    """mean over the batch of -sum_k q_k log p_k (q: soft targets, p: softmax of the logits)."""
    return -(targets * F.log_softmax(logits, axis=1)).sum(axis=1).mean()


def weighted_cross_entropy(logits: paddle.Tensor, targets: paddle.Tensor, weights: paddle.Tensor) -> paddle.Tensor:
    """sum_i w_i CE_i / sum_i w_i with w_i = q_i . class_weights (CE when all weights are equal)."""
    per_image = -(targets * F.log_softmax(logits, axis=1)).sum(axis=1)
    w = (targets * weights).sum(axis=1)
    return (per_image * w).sum() / w.sum()


def focal_loss(logits: paddle.Tensor, targets: paddle.Tensor, gamma: float) -> paddle.Tensor:
    """mean over the batch of -sum_k q_k (1 - p_k)^gamma log p_k (CE when gamma = 0)."""
    log_p = F.log_softmax(logits, axis=1)
    return -(targets * (1.0 - paddle.exp(log_p)) ** gamma * log_p).sum(axis=1).mean()


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse class frequency, scaled so the average image weighs 1: N / (K * n_k)."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=num_classes).astype(np.float64)
    return (len(labels) / (num_classes * np.maximum(counts, 1.0))).astype(np.float32)


def build_loss(name: str, *, train_labels: np.ndarray, num_classes: int, gamma: float = 2.0) -> LossFn:
    get_loss(name)
    if name == "weighted":
        weights = paddle.to_tensor(class_weights(train_labels, num_classes))
        return lambda logits, q: weighted_cross_entropy(logits, q, weights)
    if name == "focal":
        return lambda logits, q: focal_loss(logits, q, gamma)
    return soft_cross_entropy


# --- the resolved config ----------------------------------------------------------------------

RUN_OPTIONS: dict[str, Any] = {  # flags that are not part of a competition's recipe
    "fold": 0,  # the validation fold of runs/COMP/folds.csv
    "folds": None,  # "all": one run per fold
    "amp": False,  # mixed precision (GPU only)
    "weights": None,  # a .pdparams to start from
    "max_params": None,  # refuse larger models (default: the competition's max_params)
    "workers": None,  # DataLoader worker processes (default: data.DEFAULT_WORKERS)
    "visualdl": False,  # VisualDL logs in the run folder
}


def resolve_config(comp: Any, overrides: dict[str, Any] | None = None, *, data_dir: Path | None = None) -> dict[str, Any]:
    """The competition's Recipe, overridden by the non-None entries of `overrides`, validated.

    Unknown names (model, preset, optimizer, schedule, loss) are one line listing the valid ones.
    """
    from kaggle_flow import augment, models
    from kaggle_flow.data import DEFAULT_WORKERS

    config: dict[str, Any] = {**comp.train.model_dump(), **RUN_OPTIONS, "max_params": comp.max_params}
    for key, value in (overrides or {}).items():
        if key not in config:
            raise FlowError(f"unknown training option '{key}'")
        if value is not None:
            config[key] = value
    models.get_model_info(config["model"])
    augment.get_preset(config["preset"])
    get_optimizer(config["optimizer"])
    get_schedule(config["schedule"])
    get_loss(config["loss"])
    _check_numbers(config)
    sizes = [int(s) for s in config["sizes"] or []]
    image_size = sizes[-1] if sizes else comp.image_size
    for size in sizes or [image_size]:
        models.check_size(config["model"], size)
    if config["folds"] not in (None, "all"):
        raise FlowError(f"--folds takes 'all' (got '{config['folds']}')")
    config["workers"] = DEFAULT_WORKERS if config["workers"] is None else int(config["workers"])
    config["sizes"] = sizes
    config.update(
        competition=comp.name,
        classes=list(comp.classes),
        num_classes=comp.num_classes,
        metric=comp.metric,
        image_size=image_size,
        channels=comp.channels,
        mean=list(comp.mean),
        std=list(comp.std),
        data_dir=str(data_dir) if data_dir is not None else None,
    )
    return config


def _check_numbers(c: dict[str, Any]) -> None:
    checks = [
        ("epochs", c["epochs"] >= 1, "at least 1"),
        ("batch-size", c["batch_size"] >= 1, "at least 1"),
        ("lr", c["lr"] > 0, "above 0"),
        ("weight-decay", c["weight_decay"] >= 0, "0 or more"),
        ("warmup-epochs", c["warmup_epochs"] >= 0, "0 or more"),
        ("label-smoothing", 0 <= c["label_smoothing"] < 1, "in [0, 1)"),
        ("ema", 0 <= c["ema"] < 1, "in [0, 1)"),
        ("mixup", c["mixup"] >= 0, "0 or more"),
        ("cutmix", c["cutmix"] >= 0, "0 or more"),
        ("erasing", 0 <= c["erasing"] <= 1, "in [0, 1]"),
        ("cutout", 0 <= c["cutout"] <= 1, "in [0, 1]"),
        ("gridmask", 0 <= c["gridmask"] <= 1, "in [0, 1]"),
        ("patience", c["patience"] >= 0, "0 or more"),
        ("workers", c["workers"] is None or c["workers"] >= 0, "0 or more"),
        ("fold", c["fold"] >= 0, "0 or more"),
    ]
    for flag, ok, what in checks:
        if not ok:
            key = flag.replace("-", "_")
            raise FlowError(f"--{flag} must be {what} (got {c[key]})")
    sizes = c["sizes"] or []
    if any(int(s) < 1 for s in sizes):
        raise FlowError(f"--sizes must be positive pixel sizes (got {','.join(str(s) for s in sizes)})")
    if len(sizes) > c["epochs"]:
        raise FlowError(f"--sizes gives {len(sizes)} sizes for {c['epochs']} epochs: need at least one epoch per size")


def parse_sizes(text: str) -> list[int]:
    """'64,128,224' -> [64, 128, 224]; a one-line error for anything else."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise FlowError(f"--sizes takes pixel sizes separated by commas, e.g. 64,128,224 (got '{text}')") from None
    if not sizes:
        raise FlowError(f"--sizes takes pixel sizes separated by commas, e.g. 64,128,224 (got '{text}')")
    return sizes


def epoch_sizes(config: dict[str, Any]) -> list[int]:
    """The image size of each epoch: the epochs divided among --sizes, the remainder to the last ones."""
    sizes = config["sizes"] or [config["image_size"]]
    epochs = int(config["epochs"])
    base, extra = divmod(epochs, len(sizes))
    counts = [base + (1 if i >= len(sizes) - extra else 0) for i in range(len(sizes))]
    return [s for s, n in zip(sizes, counts) for _ in range(n)]


# --- folds -------------------------------------------------------------------------------------


def check_model(config: dict[str, Any]) -> None:
    """Refuse a model over --max-params before any run folder exists (built only when there is a limit)."""
    from kaggle_flow import models

    if config["max_params"] is None:
        return
    model = models.create_model(config["model"], int(config["num_classes"]), in_channels=int(config["channels"]))
    models.check_params(models.count_params(model), config["max_params"], config["model"])


def ensure_folds(ws: Any, table: pd.DataFrame) -> pd.DataFrame:
    """runs/COMP/folds.csv; without one, a stratified 10% hold-out (seed 42) is made and saved."""
    from kaggle_flow.split import make_folds

    if ws.folds_file().is_file():
        return ws.folds()
    folds = make_folds(table, val_size=0.1, seed=42, class_names=list(ws.comp.classes))
    write_csv(ws.folds_file(), folds)
    console.info(f"No folds yet: made a stratified 10% hold-out (seed 42) as fold 0 in {ws.folds_file()}")
    return folds


# --- entry point ------------------------------------------------------------------------------


class TrainingInterrupted(FlowError):
    """Ctrl-C during training: the last finished epoch is saved and can be resumed."""


EpochHook = Callable[[int, dict[str, Any]], None]


def train(
    ws: Any,
    overrides: dict[str, Any] | None = None,
    *,
    strict: bool = False,
    resume: str | None = None,
    on_epoch_end: EpochHook | None = None,
) -> Path:
    """Train one fold (or every fold with folds="all") and return the run folder.

    Args:
        ws: the Workspace of the competition.
        overrides: recipe keys and RUN_OPTIONS set by flags (None values mean "use the recipe").
        strict: broken images found by `flow eda` are an error instead of being left out.
        resume: a run id whose last checkpoint to continue (its config wins over `overrides`).
        on_epoch_end: called as hook(epoch, row) after each epoch's checkpoint is saved.
    """
    from kaggle_flow.split import train_val

    if resume is not None:
        run_dir = resolve_run(ws, resume)
        config = load_config(run_dir)
        if config.get("competition") != ws.comp.name:
            raise FlowError(f"{run_dir}: a run of '{config.get('competition')}', not of '{ws.comp.name}'")
        if (run_dir.parent / "config.json").is_file():
            raise FlowError(f"{run_dir}: a fold of a cross-validation run; resume the whole run: --resume {run_dir.parent.name}")
        console.info(f"Resuming {run_dir}")
    else:
        config = resolve_config(ws.comp, overrides, data_dir=ws.data_dir)
        check_model(config)
        run_dir = None

    table = ws.table(strict=strict)
    folds = ensure_folds(ws, table)
    labelled = table[table["split"] == "train"].reset_index(drop=True)
    n_folds = int(folds["fold"].max()) + 1

    if config["folds"] != "all":
        if run_dir is None:
            train_val(labelled, folds, int(config["fold"]))  # a missing fold fails before the run folder exists
            run_dir = new_run_dir(ws.runs_dir, config["model"], f"f{config['fold']}")
            config["run"] = run_dir.name
            write_json(run_dir / "config.json", config)
        train_rows, val_rows = train_val(labelled, folds, int(config["fold"]))
        fit(config, run_dir, train_rows, val_rows, labelled, resume=resume is not None, on_epoch_end=on_epoch_end)
        return run_dir

    if n_folds < 2:
        raise FlowError(
            f"{ws.folds_file()}: a single hold-out, not K folds; make folds first: flow split {ws.comp.name} --folds 5"
        )
    if run_dir is None:
        run_dir = new_run_dir(ws.runs_dir, config["model"], f"cv{n_folds}")
        config["run"] = run_dir.name
        config["n_folds"] = n_folds
        write_json(run_dir / "config.json", config)
    for k in range(n_folds):
        fold_dir = run_dir / f"fold{k}"
        summary = _read_summary(fold_dir)
        if summary.get("status") in ("finished", "stopped early"):
            continue
        console.info(f"Fold {k} of {n_folds}: {fold_dir}")
        resuming = (fold_dir / "last.pdstate").is_file()
        if not resuming:
            fold_dir.mkdir(parents=True, exist_ok=True)
            write_json(fold_dir / "config.json", {**config, "folds": None, "fold": k, "run": f"{run_dir.name}/fold{k}"})
        train_rows, val_rows = train_val(labelled, folds, k)
        fit(load_config(fold_dir), fold_dir, train_rows, val_rows, labelled, resume=resuming, on_epoch_end=on_epoch_end)
    _cv_summary(run_dir, config)
    return run_dir


def _read_summary(run_dir: Path) -> dict[str, Any]:
    from kaggle_flow.runs import load_summary

    return load_summary(run_dir)


def _cv_summary(run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """oof.csv of all folds together and the CV score of the out-of-fold predictions."""
    from kaggle_flow.score import get_metric

    parts = [pd.read_csv(f / "oof.csv", dtype={"id": str}) for f in fold_dirs(run_dir)]
    oof = pd.concat(parts, ignore_index=True)
    write_csv(run_dir / "oof.csv", oof)
    metric = get_metric(config["metric"])
    cv = metric(oof["label"].to_numpy(), oof["pred"].to_numpy(), int(config["num_classes"]))
    fold_scores = [_read_summary(f).get("best_score") for f in fold_dirs(run_dir)]
    summary = {
        "status": "finished",
        "metric": config["metric"],
        "best_score": cv,
        "cv_score": cv,
        "fold_scores": fold_scores,
        "epochs_done": int(np.mean([_read_summary(f).get("epochs_done", 0) for f in fold_dirs(run_dir)])),
        "duration_s": round(sum(_read_summary(f).get("duration_s", 0.0) for f in fold_dirs(run_dir)), 1),
    }
    write_json(run_dir / "summary.json", summary)
    scores = ", ".join(f"{s:.4f}" for s in fold_scores if s is not None)
    console.info(f"CV {config['metric']} (out-of-fold, {len(parts)} folds): {cv:.4f}  [folds: {scores}]")
    return summary


# --- pieces of the loop -----------------------------------------------------------------------


class EMA:
    """Exponential moving average of the weights (and BatchNorm statistics).

    The decay warms up as min(decay, (1 + n) / (10 + n)) over the first updates, so a short run is
    not dominated by the random initial weights.
    """

    def __init__(self, model: paddle.nn.Layer, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype in (paddle.float32, paddle.float64)}

    @paddle.no_grad()
    def update(self, model: paddle.nn.Layer) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in model.state_dict().items():
            if key in self.shadow:
                self.shadow[key].set_value(self.shadow[key] * d + value.detach() * (1.0 - d))

    @contextlib.contextmanager
    def applied(self, model: paddle.nn.Layer) -> Iterator[None]:
        """Swap the averaged weights in for the block (evaluating, saving)."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.set_state_dict(self.shadow)
        try:
            yield
        finally:
            model.set_state_dict(backup)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "shadow": {k: v.numpy() for k, v in self.shadow.items()}}

    def set_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        for key, value in state["shadow"].items():
            self.shadow[key].set_value(np.asarray(value))


def _seed_everything(seed: int) -> None:
    import random

    paddle.seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _out_of_memory(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "out of memory" in text or "resourceexhausted" in text


def _evaluate(model: paddle.nn.Layer, loader: Any, labels: np.ndarray, config: dict[str, Any], amp: bool) -> dict[str, Any]:
    """Validation loss, accuracy, the competition metric and per-class recall from the probabilities."""
    from sklearn.metrics import recall_score

    from kaggle_flow.predict import loader_probs
    from kaggle_flow.score import get_metric

    k = int(config["num_classes"])
    probs = loader_probs(model, loader, amp=amp)
    pred = probs.argmax(axis=1)
    loss = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())
    recall = recall_score(labels, pred, labels=list(range(k)), average=None, zero_division=0)
    return {
        "probs": probs,
        "pred": pred,
        "val_loss": loss,
        "val_acc": float((pred == labels).mean()),
        "val_metric": get_metric(config["metric"])(labels, pred, k),
        "recall": recall,
    }


def _save_checkpoint(run_dir: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """last.pdparams, last.pdopt, last.pdstate: written to temp files, then renamed together."""
    with contextlib.ExitStack() as stack:
        tmp_params = stack.enter_context(atomic_path(run_dir / "last.pdparams"))
        tmp_opt = stack.enter_context(atomic_path(run_dir / "last.pdopt"))
        tmp_state = stack.enter_context(atomic_path(run_dir / "last.pdstate"))
        paddle.save(model.state_dict(), str(tmp_params))
        paddle.save(optimizer.state_dict(), str(tmp_opt))
        paddle.save(state, str(tmp_state))


def _save_weights(path: Path, model: Any) -> None:
    with atomic_path(path) as tmp:
        paddle.save(model.state_dict(), str(tmp))


class _Bar:
    """A rich progress bar over the steps of each epoch (nothing with FLOW_NO_PROGRESS set)."""

    def __init__(self, total_epochs: int, steps: int) -> None:
        self.progress = None
        if os.environ.get("FLOW_NO_PROGRESS"):
            return
        from rich.progress import TextColumn

        self.progress = console.progress_bar(TextColumn("{task.fields[stats]}"))
        self.total_epochs, self.steps = total_epochs, steps
        self.task = self.progress.add_task("", total=steps, stats="")

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def epoch(self, epoch: int) -> None:
        if self.progress is not None:
            self.progress.reset(self.task, total=self.steps, description=f"epoch {epoch}/{self.total_epochs}", stats="")

    @property
    def active(self) -> bool:
        return self.progress is not None

    def step(self, stats: str, advance: int = 1) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=advance, stats=stats)


# --- one run ----------------------------------------------------------------------------------


def fit(
    config: dict[str, Any],
    run_dir: Path,
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
    all_rows: pd.DataFrame,
    *,
    resume: bool = False,
    on_epoch_end: EpochHook | None = None,
) -> dict[str, Any]:
    """Train one model on train_rows, validate on val_rows each epoch; return summary.json's dict.

    `all_rows` (every labelled row) fixes the file list of the image cache, so every fold of a
    competition shares one cache per size. paddle names parameters and optimizer slots from a
    process-wide counter and keys the optimizer's state by those names; a fresh name scope per run
    gives them the same names in every process, so a checkpoint loads into a resumed run.
    """
    with paddle.utils.unique_name.guard():
        return _fit(config, run_dir, train_rows, val_rows, all_rows, resume=resume, on_epoch_end=on_epoch_end)


def _fit(
    config: dict[str, Any],
    run_dir: Path,
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
    all_rows: pd.DataFrame,
    *,
    resume: bool,
    on_epoch_end: EpochHook | None,
) -> dict[str, Any]:
    import warnings

    from kaggle_flow import augment, models
    from kaggle_flow.balance import label_shuffle
    from kaggle_flow.data import ImageDataset, build_cache, make_loader, warn_failed
    from kaggle_flow.predict import comp_runs_dir, device

    warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")
    started = time.time()
    seed, epochs, k = int(config["seed"]), int(config["epochs"]), int(config["num_classes"])
    channels, batch_size = int(config["channels"]), int(config["batch_size"])

    # device and precision
    place = device()
    paddle.set_device(place)
    amp = bool(config["amp"]) and place == "gpu"
    if config["amp"] and not amp:
        console.info("--amp: mixed precision needs a GPU; training in float32 on the CPU")

    # model
    _seed_everything(seed)
    model = models.create_model(
        config["model"], k, in_channels=channels, pretrained=bool(config["pretrained"]) and not resume,
        weights=None if resume else config["weights"],
    )
    n_params = models.count_params(model)
    models.check_params(n_params, config["max_params"], config["model"])

    # images: decoded once per size into the cache; unreadable ones are left out here, once
    sizes = epoch_sizes(config)
    cache_dir = comp_runs_dir(run_dir) / "cache"
    paths = all_rows["path"].tolist()
    caches = {s: build_cache(paths, s, channels, cache_dir) for s in sorted(set(sizes) | {config["image_size"]})}
    failed = {p: why for c in caches.values() for p, why in c.failed.items()}
    if failed:
        warn_failed(failed, pd.concat([train_rows, val_rows]))
        train_rows = train_rows[~train_rows["path"].isin(failed)].reset_index(drop=True)
        val_rows = val_rows[~val_rows["path"].isin(failed)].reset_index(drop=True)
    if train_rows.empty or val_rows.empty:
        raise FlowError(f"fold {config['fold']}: no {'training' if train_rows.empty else 'validation'} images left")
    val_labels = val_rows["label"].to_numpy(dtype=np.int64)
    val_data = ImageDataset(val_rows, caches[config["image_size"]], mean=config["mean"], std=config["std"], report=False)
    val_loader = make_loader(val_data, batch_size=max(batch_size, 128), shuffle=False, workers=0)

    def epoch_rows(epoch: int) -> pd.DataFrame:
        return label_shuffle(train_rows, seed=seed + epoch) if config["balance"] else train_rows

    n_train = len(epoch_rows(0))
    drop_last = n_train > batch_size
    steps_per_epoch = n_train // batch_size if drop_last else math.ceil(n_train / batch_size)

    # optimizer, schedule, loss, EMA
    total_steps = epochs * steps_per_epoch
    schedule = build_schedule(
        config["schedule"], float(config["lr"]), total_steps=total_steps,
        warmup_steps=round(float(config["warmup_epochs"]) * steps_per_epoch),
    )
    optimizer = build_optimizer(config["optimizer"], schedule, model.parameters(), float(config["weight_decay"]))
    loss_fn = build_loss(
        config["loss"], train_labels=train_rows["label"].to_numpy(dtype=int), num_classes=k, gamma=float(config["focal_gamma"])
    )
    ema = EMA(model, float(config["ema"])) if config["ema"] else None
    scaler = paddle.amp.GradScaler(init_loss_scaling=2.0**15) if amp else None
    smoothing = float(config["label_smoothing"])

    # where we start: epoch 0, or the last checkpoint
    start, best_score, best_epoch, stale = 0, -math.inf, 0, 0
    history: list[dict[str, Any]] = []
    timing: list[dict[str, Any]] = []
    if resume:
        state = paddle.load(str(run_dir / "last.pdstate"))
        model.set_state_dict(paddle.load(str(run_dir / "last.pdparams")))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LinearWarmup's nested state reads as "unused values"
            optimizer.set_state_dict(paddle.load(str(run_dir / "last.pdopt")))
            schedule.set_state_dict(state["schedule"])
        if ema is not None and state.get("ema") is not None:
            ema.set_state_dict(state["ema"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start, best_score, best_epoch, stale = int(state["epoch"]), float(state["best_score"]), int(state["best_epoch"]), int(state["stale"])
        history = [r for r in pd.read_csv(run_dir / "metrics.csv").to_dict("records") if int(r["epoch"]) <= start]
        timing = list(state.get("timing", []))[:start]
        if start >= epochs or state.get("stopped"):
            raise FlowError(f"{run_dir}: already finished ({start} of {epochs} epochs); nothing to resume")
        console.info(f"Continuing after epoch {start} of {epochs} (best {config['metric']} {best_score:.4f} at epoch {best_epoch})")

    writer = _visualdl_writer(run_dir) if config["visualdl"] else None
    console.info(
        f"Training {config['model']} ({n_params:,} parameters) on {len(train_rows)} images, validating on "
        f"{len(val_rows)} (fold {config['fold']}); {epochs} epochs of {steps_per_epoch} steps, "
        f"{config['optimizer']} lr {config['lr']:g} {config['schedule']}, {place}{' amp' if amp else ''} -> {run_dir}"
    )
    status = "finished"
    epoch = start
    try:
        with _Bar(epochs, steps_per_epoch) as bar:
            for epoch in range(start + 1, epochs + 1):
                # 1. this epoch's data: size, rows, seeded order and augmentation
                size = sizes[epoch - 1]
                _seed_everything(seed * 1000 + epoch)
                transform = augment.build_train_transform(
                    config["preset"], size, channels,
                    erasing=float(config["erasing"]), cutout=float(config["cutout"]), gridmask=float(config["gridmask"]),
                )
                data = ImageDataset(
                    epoch_rows(epoch), caches[size], mean=config["mean"], std=config["std"],
                    transform=transform, seed=seed, report=False,
                )
                loader = make_loader(
                    data, batch_size=batch_size, shuffle=True, seed=seed, workers=int(config["workers"]), drop_last=drop_last
                )
                loader.set_epoch(epoch)
                mix_rng = np.random.default_rng([seed, epoch, 7])
                bar.epoch(epoch)

                # 2. the steps
                model.train()
                # running sums stay tensors: no host sync per step, only when the bar is redrawn
                t0, seen = time.perf_counter(), 0
                loss_sum, correct = paddle.zeros([]), paddle.zeros([], dtype="int64")
                for step, (images, labels) in enumerate(loader, start=1):
                    targets = F.one_hot(labels.astype("int64").reshape([-1]), k)
                    if config["mixup"] or config["cutmix"]:
                        mixed, soft = augment.mix_batch(
                            images.numpy(), targets.numpy().astype(np.float32),
                            mixup=float(config["mixup"]), cutmix=float(config["cutmix"]), rng=mix_rng,
                        )
                        images, targets = paddle.to_tensor(mixed), paddle.to_tensor(soft)
                    if smoothing > 0:
                        targets = F.label_smooth(targets, epsilon=smoothing)
                    try:
                        if amp:
                            with paddle.amp.auto_cast():
                                logits = model(images)
                            loss = loss_fn(logits.astype("float32"), targets)
                            scaler.scale(loss).backward()
                            scaler.step(optimizer)
                            scaler.update()
                        else:
                            logits = model(images)
                            loss = loss_fn(logits, targets)
                            loss.backward()
                            optimizer.step()
                    except Exception as exc:  # paddle's GPU out-of-memory error class differs by version
                        if _out_of_memory(exc):
                            raise FlowError(
                                f"out of GPU memory at --batch-size {batch_size} and {size} px: "
                                f"try --batch-size {max(1, batch_size // 2)}"
                            ) from None
                        raise
                    optimizer.clear_grad()
                    lr = optimizer.get_lr()
                    schedule.step()
                    if ema is not None:
                        ema.update(model)
                    n = int(labels.shape[0])
                    seen += n
                    loss_sum += loss.detach() * n
                    correct += (logits.detach().argmax(axis=1).reshape([-1]) == labels.reshape([-1]).astype("int64")).astype("int64").sum()
                    if bar.active and (step % 10 == 0 or step == len(loader)):
                        elapsed = max(time.perf_counter() - t0, 1e-9)
                        bar.step(f"loss {float(loss_sum) / seen:.4f}  lr {lr:.2e}  {seen / elapsed:.0f} img/s", advance=10 if step % 10 == 0 else step % 10)
                train_seconds = time.perf_counter() - t0
                loss_sum, correct = float(loss_sum), int(correct)

                # 3. validation (with the averaged weights under --ema)
                with ema.applied(model) if ema is not None else contextlib.nullcontext():
                    result = _evaluate(model, val_loader, val_labels, config, amp)
                    improved = result["val_metric"] > best_score
                    if improved:
                        best_score, best_epoch, stale = result["val_metric"], epoch, 0
                        _save_weights(run_dir / "best.pdparams", model)
                    else:
                        stale += 1

                # 4. the record of the epoch and the checkpoint to resume from
                row = {
                    "epoch": epoch,
                    "size": size,
                    "lr": lr,
                    "train_loss": loss_sum / max(seen, 1),
                    "train_acc": correct / max(seen, 1),
                    "val_loss": result["val_loss"],
                    "val_acc": result["val_acc"],
                    "val_metric": result["val_metric"],
                    **{f"recall_{name}": float(r) for name, r in zip(config["classes"], result["recall"])},
                }
                history.append(row)
                timing.append({"epoch": epoch, "seconds": round(train_seconds, 2), "images_per_s": round(seen / max(train_seconds, 1e-9), 1)})
                stop = bool(config["patience"]) and stale >= int(config["patience"]) and epoch < epochs
                _save_checkpoint(run_dir, model, optimizer, {
                    "epoch": epoch, "config": config, "schedule": schedule.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "best_score": best_score, "best_epoch": best_epoch, "stale": stale, "stopped": stop,
                    "timing": timing, "rng": paddle.get_rng_state(),
                })
                write_csv(run_dir / "metrics.csv", pd.DataFrame(history), float_format="%.6g")
                if writer is not None:
                    for key in ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_metric"):
                        writer.add_scalar(f"train/{key}", float(row[key]), epoch)
                console.info(
                    f"epoch {epoch:>3}/{epochs}  {size}px  lr {lr:.2e}  train_loss {row['train_loss']:.4f}  "
                    f"val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}  {config['metric']} "
                    f"{row['val_metric']:.4f}{' *' if improved else ''}  {timing[-1]['images_per_s']:.0f} img/s"
                )
                if on_epoch_end is not None:
                    on_epoch_end(epoch, row)
                if stop:
                    status = "stopped early"
                    console.info(f"No improvement in {config['patience']} epochs: stopping early after epoch {epoch}")
                    break
    except KeyboardInterrupt:
        done = history[-1]["epoch"] if history else 0
        _write_summary(run_dir, config, "interrupted", best_score, best_epoch, done, started, timing, n_params)
        raise TrainingInterrupted(
            f"interrupted after epoch {done} of {epochs}; continue with: flow train {config['competition']} "
            f"--resume {str(config.get('run', run_dir.name)).split('/')[0]}"
        ) from None
    finally:
        if writer is not None:
            writer.close()

    # the best model's out-of-fold predictions, confusion matrix, curves and summary
    from sklearn.metrics import confusion_matrix

    from kaggle_flow.train_plots import plot_confusion, plot_curves

    model.set_state_dict(paddle.load(str(run_dir / "best.pdparams")))
    best = _evaluate(model, val_loader, val_labels, config, amp)
    oof = pd.DataFrame({"id": val_rows["id"].to_numpy(), "label": val_labels, "pred": best["pred"]})
    for j in range(k):
        oof[f"prob_{j}"] = best["probs"][:, j]
    write_csv(run_dir / "oof.csv", oof, float_format="%.6g")
    matrix = confusion_matrix(val_labels, best["pred"], labels=list(range(k)))
    plot_confusion(matrix, list(config["classes"]), run_dir / "confusion.png", title=f"validation, epoch {best_epoch}")
    plot_curves(pd.DataFrame(history), config["metric"], run_dir / "curves.png")
    summary = _write_summary(run_dir, config, status, best_score, best_epoch, epoch, started, timing, n_params)
    _print_summary(run_dir, config, summary, history, best["recall"])
    return summary


def _write_summary(
    run_dir: Path, config: dict[str, Any], status: str, best_score: float, best_epoch: int,
    epochs_done: int, started: float, timing: list[dict[str, Any]], n_params: int,
) -> dict[str, Any]:
    previous = _read_summary(run_dir).get("duration_s", 0.0) if (run_dir / "summary.json").is_file() else 0.0
    summary = {
        "status": status,
        "metric": config["metric"],
        "best_score": None if best_score == -math.inf else best_score,
        "best_epoch": best_epoch,
        "epochs_done": epochs_done,
        "epochs": int(config["epochs"]),
        "duration_s": round(float(previous) + time.time() - started, 1),
        "images_per_s": round(float(np.mean([t["images_per_s"] for t in timing])), 1) if timing else None,
        "epoch_seconds": [t["seconds"] for t in timing],
        "timing": timing,
        "params": n_params,
        "model": config["model"],
        "fold": config["fold"],
    }
    write_json(run_dir / "summary.json", summary)
    return summary


def _print_summary(
    run_dir: Path, config: dict[str, Any], summary: dict[str, Any], history: list[dict[str, Any]], recall: np.ndarray
) -> None:
    best = next(r for r in history if r["epoch"] == summary["best_epoch"])
    rows = [
        ("run", run_dir.name),
        ("status", summary["status"]),
        (f"best val {config['metric']}", f"{summary['best_score']:.4f} (epoch {summary['best_epoch']})"),
        ("val accuracy / loss", f"{best['val_acc']:.4f} / {best['val_loss']:.4f}"),
        ("epochs", f"{summary['epochs_done']}/{summary['epochs']}"),
        ("time", f"{summary['duration_s']:.0f} s"),
        ("worst class recall", f"{config['classes'][int(np.argmin(recall))]} {float(np.min(recall)):.3f}"),
    ]
    console.table(f"Training summary ({config['model']}, fold {config['fold']})", ["", "value"], rows)
    console.info(f"Saved {run_dir}: best.pdparams, metrics.csv, curves.png, confusion.png, oof.csv")


def _visualdl_writer(run_dir: Path) -> Any:
    try:
        from visualdl import LogWriter
    except ImportError:
        console.warn("--visualdl: visualdl is not installed (pip install visualdl); no VisualDL logs written")
        return None
    return LogWriter(logdir=str(run_dir / "visualdl"))
