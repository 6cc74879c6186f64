"""Training runs: which folds to train, the run folder, and `fit`, which puts the loop's parts together.

Read it top to bottom:

1. `train`: the RunConfig (the recipe overridden by flags), the folds (runs/COMP/folds.csv, made
   with the one default when missing), then one run (`fit`) or one per fold (`--folds all`).
2. `fit`: the data (an image cache per size, a loader per epoch), the state (loop.build_state),
   then per epoch: train_one_epoch, evaluate (with the EMA weights), the checkpoints; finally the
   best model's out-of-fold predictions, the plots and summary.json.

Every random draw of an epoch is seeded from (seed, epoch): paddle (dropout), the sampling order,
the augmentations, label shuffling, mixup/cutmix. A run is therefore repeatable on CPU, and
`--resume` replays the remaining epochs exactly as an uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import paddle
import pandas as pd

from kaggle_flow import console
from pydantic import ValidationError

from kaggle_flow.config import RunConfig, build_config, validation_message
from kaggle_flow.errors import FlowError
from kaggle_flow.fileio import write_csv
from kaggle_flow.engine.loop import (
    build_state,
    check_amp,
    Checkpointer,
    EpochHook,
    EpochResult,
    evaluate,
    Evaluation,
    NonFiniteLoss,
    Parallel,
    Progress,
    Reporter,
    seed_everything,
    train_one_epoch,
    TrainState,
)
from kaggle_flow.machine import device, use_device
from kaggle_flow.runs import FAILED, Run, Summary, create_fold, create_run, resolve_run

if TYPE_CHECKING:
    from kaggle_flow.data.images import ImageCache
    from kaggle_flow.data.loader import Loader
    from kaggle_flow.engine.distributed import Launch
    from kaggle_flow.workspace import Workspace


class TrainingInterrupted(FlowError):
    """Ctrl-C (or SIGTERM) during training: the last finished epoch is saved and can be resumed."""


class NothingToResume(TrainingInterrupted):
    """Ctrl-C before the first checkpoint of a run (or of a fold): there is nothing to continue."""


@contextlib.contextmanager
def _discard_unsaved(run: Run, *, fresh: bool) -> Iterator[None]:
    """Ctrl-C before a run's first checkpoint: nothing to resume, so a fresh run leaves no folder.

    With a checkpoint (an earlier epoch, or an earlier fold of a cross-validation run) the run stays
    and the message says how to continue it.
    """
    try:
        yield
    except (KeyboardInterrupt, TrainingInterrupted) as exc:
        if not any(run.path.rglob(run.last_state.name)):
            if fresh:
                shutil.rmtree(run.path, ignore_errors=True)
            removed = f" ({run.path} removed)" if fresh else ""
            raise NothingToResume(f"interrupted before the first epoch ended: nothing saved, nothing to resume{removed}") from None
        if isinstance(exc, TrainingInterrupted) and not isinstance(exc, NothingToResume):
            raise  # it already says where to continue
        raise TrainingInterrupted(f"interrupted; continue with: flow train {run.config.competition} --resume {run.id.split('/')[0]}") from None


class TrainingDiverged(FlowError):
    """A NaN or infinite loss: the run is marked failed, and nothing picks its weights."""


# --- which runs ---------------------------------------------------------------------------------


def train(
    ws: Workspace,
    overrides: dict[str, Any] | None = None,
    *,
    strict: bool = False,
    resume: str | None = None,
    on_epoch_end: EpochHook | None = None,
    launch: Launch | None = None,
) -> Run:
    """Train one fold (or every fold with folds="all") and return the run.

    Args:
        ws: the Workspace of the competition.
        overrides: recipe keys and run options set by flags (None values mean "use the recipe").
        strict: broken images found by `flow eda` are an error instead of being left out.
        resume: a run id whose last checkpoint to continue (its own config wins over `overrides`).
        on_epoch_end: called as hook(epoch, row) after each epoch's checkpoint is saved (one process).
        launch: the processes to train in (`--nproc`, `--gpus`, `--nnodes`...). More than one: this
            process makes the run folder and the image caches, then starts paddle.distributed.launch
            and waits for it (distributed.py); the processes train the folder it made.
    """
    from kaggle_flow.engine import distributed
    from kaggle_flow.table.layouts import labelled
    from kaggle_flow.machine import sigterm_as_interrupt
    from kaggle_flow.explore.split import ensure_folds

    sigterm_as_interrupt()  # paddle, imported with this module, replaced flow's handler: back before any file is made
    run = _run_to_resume(ws, resume) if resume is not None else None
    launch = distributed.launch_for(run, launch or distributed.Launch())
    if run is not None:
        console.info(f"Resuming {run.path}")
    options = {**(overrides or {}), **launch.config_keys()}
    # every option checked before anything is made or measured
    config = run.config if run is not None else resolve_config(ws, options)
    assert isinstance(config, RunConfig)
    distributed.check(launch, sync_bn=config.sync_bn)
    table = ws.table(strict=strict)
    folds = ensure_folds(ws, table)
    rows = labelled(table)
    if launch.world_size > 1 and launch.node_rank > 0:  # the run folder is node 0's
        return distributed.launch_training(ws, None, launch, rows, strict=strict, resume=resume is not None)
    fresh = run is None
    run = run or _new_run(ws, options, rows, folds)
    with _discard_unsaved(run, fresh=fresh):
        if launch.world_size > 1:
            return distributed.launch_training(ws, run, launch, rows, strict=strict, resume=not fresh)
        train_folder(run, rows, folds, resume=not fresh, on_epoch_end=on_epoch_end)
    return run


def _new_run(ws: Workspace, options: dict[str, Any], rows: pd.DataFrame, folds: pd.DataFrame) -> Run:
    """The run folder with its config: a missing fold or a single hold-out for --folds all fails first."""
    from kaggle_flow.explore.split import train_val

    if options.get("full"):
        config = _full_config(ws, options, rows)
    else:
        fold = 0 if options.get("folds") == "all" else (options.get("fold") or 0)
        config = resolve_config(ws, options, train_rows=train_val(rows, folds, fold)[0])
    if config.folds == "all":
        n_folds = int(folds["fold"].max()) + 1
        if n_folds < 2:
            raise FlowError(f"{ws.folds_file()}: a single hold-out, not K folds; make folds first: flow split {ws.comp.name} --folds 5")
        config = config.model_copy(update={"n_folds": n_folds})
    return create_run(ws.runs_dir, config)


def train_folder(run: Run, rows: pd.DataFrame, folds: pd.DataFrame, *, resume: bool, on_epoch_end: EpochHook | None = None) -> None:
    """Train a run whose folder exists: one fit, or one per fold. Every process of a data-parallel run
    does this on the folder the launching process made."""
    from kaggle_flow.explore.split import train_val

    config = run.config
    assert isinstance(config, RunConfig)
    if config.folds == "all":
        _cross_validate(run, rows, folds, on_epoch_end)
        return
    if config.full:
        train_rows, val_rows = rows, rows.iloc[0:0]
    else:
        train_rows, val_rows = train_val(rows, folds, config.fold)
    fit(run, train_rows, val_rows, rows, resume=resume, on_epoch_end=on_epoch_end)


def resolve_config(ws: Workspace, overrides: dict[str, Any], *, train_rows: pd.DataFrame | None = None) -> RunConfig:
    """The recipe with the flags, label shuffling as flags, `flow balance` and the recipe say.

    `auto` values are chosen from the fold's training rows and this machine (recipe.py); without
    `train_rows` they are left to training (the options are only checked).
    """
    from kaggle_flow.explore.balance import balance_setting
    from kaggle_flow.engine.recipe import measure

    overrides = dict(overrides)
    if overrides.get("balance") is not None:
        reason = "--balance" if overrides["balance"] else "--no-balance"
    elif (recorded := balance_setting(ws)) is not None:
        overrides["balance"] = recorded
        reason = f"`flow balance {ws.comp.name}{'' if recorded else ' --off'}` ({ws.runs_dir / 'balance.json'})"
    else:
        reason = f"the recipe of {ws.comp.path.name}"
    auto = _auto_keys(ws, overrides)
    facts = measure(ws, train_rows, device()) if train_rows is not None and auto else None
    config = build_config(ws.comp, {**overrides, "balance_reason": reason}, data_dir=ws.data_dir, facts=facts,
                          placeholders=train_rows is None)
    if train_rows is not None or "model" not in auto:
        _check_params(config)
    return config


def _full_config(ws: Workspace, overrides: dict[str, Any], rows: pd.DataFrame) -> RunConfig:
    """A refit on every labelled row: the best validated run's recipe for the epochs it found best.

    Flags given with --full override that recipe. With no validated run, --epochs says how long.
    """
    from kaggle_flow.errors import NotFoundError
    from kaggle_flow.runs import best_epoch, validated_source

    given = {k: v for k, v in overrides.items() if v is not None and k != "full"}
    try:
        source = validated_source(ws, given.get("model"))
    except NotFoundError:
        if given.get("epochs") in (None, "auto"):
            raise
        config = resolve_config(ws, overrides, train_rows=rows)
        return config.model_copy(update={"full": True, "folds": None})
    assert isinstance(source.config, RunConfig)
    epochs = best_epoch(source)
    why = {"epochs": f"{epochs}: the best epoch of {source.id} (validation {source.config.metric} {source.summary.best_score:.4f})"}
    values = {
        **source.config.model_dump(exclude={"run", "n_folds", "auto"}), "epochs": epochs, **given,
        "full": True, "full_from": source.id, "folds": None, "fold": 0, "auto": {} if "epochs" in given else why,
    }
    try:
        config = RunConfig(**values)
    except ValidationError as exc:
        raise FlowError(validation_message(exc)) from None
    console.info(f"Refitting {source.id} on all {len(rows)} labelled images")
    return config


def _auto_keys(ws: Workspace, overrides: dict[str, Any]) -> set[str]:
    """The keys the automatic recipe will choose: `auto` in the recipe and not set by a flag."""
    from kaggle_flow.engine.recipe import AUTO, AUTO_KEYS

    values = {**ws.comp.train.model_dump(), "image_size": ws.comp.image_size}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("sizes"):
        values["image_size"] = overrides["sizes"][-1]
    return {k for k in AUTO_KEYS if values.get(k) == AUTO}


def _check_params(config: RunConfig) -> None:
    """Refuse a model over --max-params before any run folder exists (built only when there is a limit)."""
    from kaggle_flow import models

    if config.max_params is None:
        return
    model = models.create_model(config.model, config.num_classes, in_channels=config.channels, image_size=config.image_size)
    models.check_params(models.count_params(model), config.max_params, config.model)


def _run_to_resume(ws: Workspace, name: str) -> Run:
    from kaggle_flow.runs import FINISHED

    run = resolve_run(ws, name)
    if run.kind == "ensemble":
        raise FlowError(f"{run.path}: an ensemble, not a training run; nothing to resume")
    if run.config.competition != ws.comp.name:
        raise FlowError(f"{run.path}: a run of '{run.config.competition}', not of '{ws.comp.name}'")
    if run.is_fold:
        raise FlowError(f"{run.path}: a fold of a cross-validation run; resume the whole run: --resume {run.path.parent.name}")
    summary = run.summary
    if run.kind != "cv" and summary.status in FINISHED:
        raise FlowError(f"{run.path}: already finished ({summary.epochs_done} of {summary.epochs} epochs); nothing to resume")
    if run.kind != "cv" and not Checkpointer(run).has_last():
        raise FlowError(f"{run.path}: no checkpoint to resume (it stopped before its first epoch ended); start anew: flow train {ws.comp.name}")
    return run


def _cross_validate(run: Run, rows: pd.DataFrame, folds: pd.DataFrame, on_epoch_end: EpochHook | None) -> None:
    """One run per fold (finished folds of a resumed run are skipped), then the out-of-fold CV score."""
    from kaggle_flow.explore.split import train_val

    main = paddle.distributed.get_rank() == 0
    n_folds = int(folds["fold"].max()) + 1
    for k in range(n_folds):
        fold = create_fold(run, k, write=main)
        if fold.summary.status in ("finished", "stopped early"):
            continue
        if main:
            console.info(f"Fold {k} of {n_folds}: {fold.path}")
        train_rows, val_rows = train_val(rows, folds, k)
        resume_fold = Checkpointer(fold).has_last()
        with _discard_unsaved(fold, fresh=not resume_fold) if main else contextlib.nullcontext():
            fit(fold, train_rows, val_rows, rows, resume=resume_fold, on_epoch_end=on_epoch_end)
    if main:
        _cv_summary(run)


def _cv_summary(run: Run) -> Summary:
    """oof.csv of all folds together and the CV score of the out-of-fold predictions."""
    from kaggle_flow.metrics import METRICS

    folds = run.folds()
    oof = pd.concat([pd.read_csv(f.oof, dtype={"id": str}) for f in folds], ignore_index=True)
    write_csv(run.oof, oof)
    cv = METRICS[run.config.metric](oof["label"].to_numpy(), oof["pred"].to_numpy(), run.config.num_classes)
    summaries = [f.summary for f in folds]
    summary = run.write_summary(Summary(
        status="finished", metric=run.config.metric, best_score=cv, cv_score=cv, epochs=run.config.epochs,
        fold_scores=[s.best_score for s in summaries], epochs_done=round(float(np.mean([s.epochs_done for s in summaries]))),
        duration_s=round(sum(s.duration_s for s in summaries), 1),
    ))
    scores = ", ".join(f"{s:.4f}" for s in summary.fold_scores if s is not None)
    console.info(f"CV {run.config.metric} (out-of-fold, {len(folds)} folds): {cv:.4f}  [folds: {scores}]")
    return summary


# --- one run: data ------------------------------------------------------------------------------


@dataclass
class FoldData:
    """The images of one run: a cache per size, the validation loader, a training loader per epoch."""

    config: RunConfig
    train_rows: pd.DataFrame
    val_rows: pd.DataFrame
    caches: dict[int, ImageCache]
    val_loader: Loader | None  # None for a full refit: nothing is held out (this process's shard)
    rank: int = 0  # this process and how many train together (paddle.distributed)
    world: int = 1

    @property
    def val_labels(self) -> np.ndarray:
        return self.val_rows["label"].to_numpy(dtype=np.int64)

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.world

    @property
    def steps_per_epoch(self) -> int:
        n, batch = len(self.epoch_rows(0)), self.global_batch
        return n // batch if n > batch else 1  # drop_last only when there is more than one global batch

    def whole_val_loader(self) -> Loader | None:
        """Every validation row, unsharded: rank 0 evaluates the best model on it alone, at the end."""
        from kaggle_flow.data.loader import make_loader

        if self.val_loader is None or self.world == 1:
            return self.val_loader
        batch = self.val_loader.loader.batch_sampler.batch_size
        return make_loader(self.val_loader.dataset, batch_size=batch, shuffle=False, workers=0)

    def epoch_rows(self, epoch: int) -> pd.DataFrame:
        """The epoch's training rows: label shuffling draws them afresh each epoch."""
        from kaggle_flow.explore.balance import label_shuffle

        return label_shuffle(self.train_rows, seed=self.config.seed + epoch) if self.config.balance else self.train_rows

    def train_loader(self, epoch: int, size: int) -> Loader:
        from kaggle_flow.data import augment
        from kaggle_flow.data.loader import ImageDataset, make_loader

        c = self.config
        transform = augment.build_train_transform(c.preset, size, c.channels, erasing=c.erasing, cutout=c.cutout, gridmask=c.gridmask)
        rows = self.epoch_rows(epoch)
        data = ImageDataset(rows, self.caches[size], mean=c.mean, std=c.std, transform=transform, seed=c.seed, report=False)
        loader = make_loader(
            data, batch_size=c.batch_size, shuffle=True, seed=c.seed, workers=c.workers, drop_last=len(rows) > self.global_batch,
            rank=self.rank, world=self.world,
        )
        loader.set_epoch(epoch)
        return loader


def build_caches(config: RunConfig, all_rows: pd.DataFrame, cache_dir: Path) -> dict[int, ImageCache]:
    """The image cache of every size the run trains at (`all_rows`, every labelled row, fixes the
    file list, so every fold shares one cache per size). Built once, then found by every process."""
    from kaggle_flow.data.images import build_cache

    paths = all_rows["path"].tolist()
    sizes = sorted(set(config.epoch_sizes()) | {config.image_size})
    return {s: build_cache(paths, s, config.channels, cache_dir) for s in sizes}


def prepare_data(
    config: RunConfig, run: Run, train_rows: pd.DataFrame, val_rows: pd.DataFrame, all_rows: pd.DataFrame, *,
    rank: int = 0, world: int = 1, report: bool = True,
) -> FoldData:
    """Decode every image once per size into the cache; unreadable ones are left out here, once."""
    from kaggle_flow.data.images import warn_failed
    from kaggle_flow.data.loader import ImageDataset, make_loader

    caches = build_caches(config, all_rows, run.cache_dir)
    failed = {p: why for c in caches.values() for p, why in c.failed.items()}
    if failed:
        if report:
            warn_failed(failed, pd.concat([train_rows, val_rows]))
        train_rows = train_rows[~train_rows["path"].isin(failed)].reset_index(drop=True)
        val_rows = val_rows[~val_rows["path"].isin(failed)].reset_index(drop=True)
    if train_rows.empty or (val_rows.empty and not config.full):
        raise FlowError(f"fold {config.fold}: no {'training' if train_rows.empty else 'validation'} images left")
    val_loader = None
    if not config.full:
        val_data = ImageDataset(val_rows, caches[config.image_size], mean=config.mean, std=config.std, report=False)
        val_loader = make_loader(val_data, batch_size=max(config.batch_size, 128), shuffle=False, workers=0,
                                 rank=rank, world=world)
    return FoldData(config, train_rows, val_rows, caches, val_loader, rank, world)


# --- one run: the epochs ------------------------------------------------------------------------


def fit(
    run: Run, train_rows: pd.DataFrame, val_rows: pd.DataFrame, all_rows: pd.DataFrame, *,
    resume: bool = False, on_epoch_end: EpochHook | None = None,
) -> Summary:
    """Train run's model on train_rows, validate on val_rows each epoch; return its summary.

    paddle names parameters and optimizer slots from a process-wide counter and keys the optimizer's
    state by those names; a fresh name scope per run gives them the same names in every process, so
    a checkpoint loads into a resumed run.
    """
    import warnings

    warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")
    with paddle.utils.unique_name.guard():
        return _fit(run, train_rows, val_rows, all_rows, resume=resume, on_epoch_end=on_epoch_end)


def _fit(
    run: Run, train_rows: pd.DataFrame, val_rows: pd.DataFrame, all_rows: pd.DataFrame, *,
    resume: bool, on_epoch_end: EpochHook | None,
) -> Summary:
    from kaggle_flow import models

    config, started = run.config, time.time()
    assert isinstance(config, RunConfig)
    place = use_device()
    parallel = Parallel(config.sync_bn)
    if parallel.world != config.world_size:
        raise FlowError(f"{run.path}: a run of {config.world_size} processes, here in {parallel.world}")
    if config.amp != "off" and place != "gpu" and parallel.is_main:
        console.info("--amp: mixed precision needs a GPU; training in float32 on the CPU")
    check_amp(config.amp, place)
    seed_everything(config.seed)
    model = models.create_model(
        config.model, config.num_classes, in_channels=config.channels, image_size=config.image_size,
        pretrained=config.pretrained and not resume, weights=None if resume else config.weights,
    )
    n_params = models.count_params(model)
    models.check_params(n_params, config.max_params, config.model)
    data = prepare_data(config, run, train_rows, val_rows, all_rows, rank=parallel.rank, world=parallel.world, report=parallel.is_main)
    state = build_state(config, parallel.prepare(model), train_labels=data.train_rows["label"].to_numpy(dtype=int),
                        steps_per_epoch=data.steps_per_epoch, place=place, parallel=parallel)
    checkpointer = Checkpointer(run)
    progress, history = (_resume(state, checkpointer, run) if resume else (Progress(), []))
    if parallel.is_main:
        _announce(config, run, data, n_params, state)
    status = _epochs(state, data, checkpointer, progress, history, on_epoch_end, started, n_params)
    parallel.save_for_check(state.model)
    if not parallel.is_main:  # rank 0 alone writes what the run leaves
        return Summary(status=status)
    return _finish(state, data, run, progress, history, status, started, n_params)


def _resume(state: TrainState, checkpointer: Checkpointer, run: Run) -> tuple[Progress, list[dict[str, Any]]]:
    """The last checkpoint loaded into `state` (in every process): its progress and metrics so far."""
    config = state.config
    progress = checkpointer.resume(state)
    history = [r for r in pd.read_csv(run.metrics_file).to_dict("records") if int(r["epoch"]) <= progress.epoch]
    progress.timing = progress.timing[: progress.epoch]
    if progress.epoch >= config.epochs or progress.stopped:
        raise FlowError(f"{run.path}: already finished ({progress.epoch} of {config.epochs} epochs); nothing to resume")
    if state.parallel.is_main:
        console.info(f"Continuing after epoch {progress.epoch} of {config.epochs} (best {config.metric} {progress.best_score:.4f} at epoch {progress.best_epoch})")
    return progress, history


def _announce(config: RunConfig, run: Run, data: FoldData, n_params: int, state: TrainState) -> None:
    if config.auto:
        names = {"image_size": "size", "batch_size": "batch"}
        lines = [f"  {names.get(k, k):<7} {why}" for k, why in config.auto.items()]
        console.info("Automatic recipe (a flag overrides each):\n" + "\n".join(lines))
    if config.freeze_epochs:
        console.info(f"Backbone frozen for epochs 1-{config.freeze_epochs} (only the new head trains), then every layer trains")
    elif config.freeze:
        console.info("Backbone frozen: only the new classifier head trains")
    if config.balance:
        console.info(f"Label shuffling on (every class as often as the largest, redrawn each epoch): {config.balance_reason}")
    processes = ""
    if data.world > 1:
        lr = f" (lr {config.lr:g} x {data.world}, --scale-lr)" if config.scale_lr else ""
        processes = f"{data.world} {state.place.upper()} processes of {config.batch_size} images a step (global batch {data.global_batch}){lr}, "
    amp = f" amp {state.precision.mode}" if state.precision.enabled else ""
    console.info(
        f"Training {config.model} ({n_params:,} parameters) on {len(data.train_rows)} images, "
        + ("nothing held out (full refit)" if config.full else f"validating on {len(data.val_rows)} (fold {config.fold})")
        + f"; {config.epochs} epochs of {data.steps_per_epoch} steps, {processes}"
        f"{config.optimizer} lr {config.peak_lr:g} {config.schedule}, {state.place}{amp} -> {run.path}"
    )


def faster_flags(config: RunConfig) -> str:
    """Flags that would make a slow CPU run faster, for the warning."""
    from kaggle_flow.engine.recipe import CPU_SIZE, FAMILY

    flags = []
    if config.image_size > CPU_SIZE:
        flags.append(f"--size {CPU_SIZE}")
    if config.model not in (*FAMILY[:2], "smallcnn", "lenet"):
        flags.append(f"--model {FAMILY[1]}")
    if config.epochs > 10:
        flags.append(f"--epochs {max(5, config.epochs // 2)}")
    return ", ".join(flags)


def _epochs(
    state: TrainState, data: FoldData, checkpointer: Checkpointer, progress: Progress, history: list[dict[str, Any]],
    on_epoch_end: EpochHook | None, started: float, n_params: int,
) -> str:
    """The epochs after progress.epoch; the run's status. Ctrl-C leaves the last finished epoch to resume.

    Every process runs the same epochs and takes the same decisions (the validation score is every
    process's); rank 0 alone writes checkpoints, metrics.csv and logs.
    """
    config, run, main = state.config, checkpointer.run, state.parallel.is_main
    writer = _visualdl_writer(run) if config.visualdl and main else None
    try:
        reporter = Reporter(config, data.steps_per_epoch, first_epoch=progress.epoch + 1, place=state.place,
                            faster=faster_flags(config), world=data.world, quiet=not main)
        with reporter:
            for epoch in range(progress.epoch + 1, config.epochs + 1):
                result, size = _train_epoch(state, data, reporter, epoch)
                state.parallel.average_buffers(state.model, state.ema.shadow)
                with state.ema.applied(state.model):  # validate and keep the averaged weights under --ema
                    evaluation = _validate(state, data)
                    improved = progress.record(epoch, evaluation.metric if evaluation is not None else math.nan)
                    if improved and main:
                        checkpointer.save_best(state.model)
                row = _epoch_row(config, epoch, size, result.lr, result.loss, result.acc, evaluation)
                history.append(row)
                progress.timing.append({"epoch": epoch, "seconds": round(result.seconds, 2), "images_per_s": round(result.images / max(result.seconds, 1e-9), 1)})
                progress.stopped = bool(config.patience) and progress.stale >= config.patience and epoch < config.epochs
                if main:
                    checkpointer.save_last(state, progress)
                    write_csv(run.metrics_file, pd.DataFrame(history), float_format="%.6g")
                    _log_epoch(writer, config, row, improved, progress.timing[-1]["images_per_s"])
                if on_epoch_end is not None:
                    on_epoch_end(epoch, row)
                if progress.stopped:
                    if main:
                        console.info(f"No improvement in {config.patience} epochs: stopping early after epoch {epoch}")
                    return "stopped early"
    except NonFiniteLoss as exc:
        why = _diverged(config, progress.epoch + 1, exc, data.steps_per_epoch)
        if main:
            _write_summary(run, FAILED, progress, started, n_params, reason=why)
        raise TrainingDiverged(f"{why}; {run.path} is marked failed") from None
    except KeyboardInterrupt:
        if not checkpointer.has_last():
            raise  # nothing saved: train() removes the run folder
        if main:
            _write_summary(run, "interrupted", progress, started, n_params)
        raise TrainingInterrupted(
            f"interrupted after epoch {progress.epoch} of {config.epochs}; continue with: "
            f"flow train {config.competition} --resume {run.id.split('/')[0]}"
        ) from None
    finally:
        if writer is not None:
            writer.close()
    return "finished"


def _diverged(config: RunConfig, epoch: int, exc: NonFiniteLoss, steps: int) -> str:
    """What a user reads when the loss stops being finite: where, and the likely cause."""
    cause = f"the learning rate is likely too high for this model (--lr {config.lr:g}; try --lr {config.lr / 10:g})"
    if config.amp:
        cause += " or float16 overflowed (try without --amp)"
    return f"loss became {exc.value} at epoch {epoch}, step {exc.step} of {steps} (lr {exc.lr:.2e}): training diverged; {cause}"


def _train_epoch(state: TrainState, data: FoldData, reporter: Reporter, epoch: int) -> tuple[EpochResult, int]:
    """One epoch's training steps at its size, with its seeds, loader and trainable layers."""
    from kaggle_flow import models

    config = state.config
    size = config.epoch_sizes()[epoch - 1]
    seed_everything(config.seed * 1000 + epoch)
    loader = data.train_loader(epoch, size)
    state.mixer.start_epoch(epoch)
    if config.freeze or config.freeze_epochs:
        models.set_backbone_trainable(state.model, config.model, not config.frozen(epoch))
    reporter.start_epoch(epoch)
    return train_one_epoch(state, loader, reporter), size


def _validate(state: TrainState, data: FoldData) -> Evaluation | None:
    if data.val_loader is None:
        return None
    return evaluate(state.model, data.val_loader, data.val_labels, state.config, state.precision, state.parallel)


def _epoch_row(config: RunConfig, epoch: int, size: int, lr: float, loss: float, acc: float, e: Evaluation | None) -> dict[str, Any]:
    """One line of metrics.csv (no validation columns for a full refit)."""
    row = {"epoch": epoch, "size": size, "lr": lr, "train_loss": loss, "train_acc": acc}
    if e is not None:
        row.update(val_loss=e.loss, val_acc=e.acc, val_metric=e.metric)
        row.update({f"recall_{name}": float(r) for name, r in zip(config.classes, e.recall)})
    return row


def _log_epoch(writer: Any, config: RunConfig, row: dict[str, Any], improved: bool, images_per_s: float) -> None:
    if writer is not None:
        for key in ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_metric"):
            if key in row:
                writer.add_scalar(f"train/{key}", float(row[key]), row["epoch"])
    line = f"epoch {row['epoch']:>3}/{config.epochs}  {row['size']}px  lr {row['lr']:.2e}  train_loss {row['train_loss']:.4f}  "
    if "val_loss" in row:
        line += f"val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}  {config.metric} {row['val_metric']:.4f}{' *' if improved else ''}  "
    console.info(f"{line}{images_per_s:.0f} img/s")


# --- one run: what it leaves ------------------------------------------------------------------------


def _finish(
    state: TrainState, data: FoldData, run: Run, progress: Progress, history: list[dict[str, Any]],
    status: str, started: float, n_params: int,
) -> Summary:
    """The best model's out-of-fold predictions, confusion matrix, curves and summary."""
    from sklearn.metrics import confusion_matrix

    from kaggle_flow.engine.plots import plot_confusion, plot_curves

    config = state.config
    plot_curves(pd.DataFrame(history), config.metric, run.curves)
    recall = None
    val_loader = data.whole_val_loader()
    if val_loader is not None:
        state.model.set_state_dict(paddle.load(str(run.best)))
        best = evaluate(state.model, val_loader, data.val_labels, config, state.precision)
        oof = pd.DataFrame({"id": data.val_rows["id"].to_numpy(), "label": data.val_labels, "pred": best.pred})
        for j in range(config.num_classes):
            oof[f"prob_{j}"] = best.probs[:, j]
        write_csv(run.oof, oof, float_format="%.6g")
        matrix = confusion_matrix(data.val_labels, best.pred, labels=list(range(config.num_classes)))
        plot_confusion(matrix, list(config.classes), run.confusion, title=f"validation, epoch {progress.best_epoch}")
        recall = best.recall
    summary = _write_summary(run, status, progress, started, n_params)
    _print_summary(run, summary, history, recall)
    return summary


def _write_summary(run: Run, status: str, progress: Progress, started: float, n_params: int, reason: str = "") -> Summary:
    config = run.config
    assert isinstance(config, RunConfig)
    timing = progress.timing
    return run.write_summary(Summary(
        status=status, reason=reason, metric=config.metric, best_score=None if progress.best_score == -math.inf else progress.best_score,
        best_epoch=progress.best_epoch, epochs_done=progress.epoch, epochs=config.epochs,
        duration_s=round(run.summary.duration_s + time.time() - started, 1),  # a resumed run adds to its earlier time
        images_per_s=round(float(np.mean([t["images_per_s"] for t in timing])), 1) if timing else None,
        timing=timing, params=n_params,
    ))


def _print_summary(run: Run, summary: Summary, history: list[dict[str, Any]], recall: np.ndarray | None) -> None:
    config = run.config
    assert isinstance(config, RunConfig)
    rows = [("run", run.id), ("status", summary.status)]
    if recall is not None:
        best = next(r for r in history if r["epoch"] == summary.best_epoch)
        rows += [
            (f"best val {config.metric}", f"{summary.best_score:.4f} (epoch {summary.best_epoch})"),
            ("val accuracy / loss", f"{best['val_acc']:.4f} / {best['val_loss']:.4f}"),
        ]
    else:
        rows.append(("validation", f"none: trained on every labelled image ({config.full_from or 'given --epochs'})"))
    rows += [("epochs", f"{summary.epochs_done}/{summary.epochs}"), ("time", f"{summary.duration_s:.0f} s")]
    if recall is not None:
        rows.append(("worst class recall", f"{config.classes[int(np.argmin(recall))]} {float(np.min(recall)):.3f}"))
    console.table(f"Training summary ({config.model}, {'full refit' if config.full else f'fold {config.fold}'})", ["", "value"], rows)
    saved = "best.pdparams, metrics.csv, curves.png" + ("" if config.full else ", confusion.png, oof.csv")
    console.info(f"Saved {run.path}: {saved}")


def _visualdl_writer(run: Run) -> Any:
    try:
        from visualdl import LogWriter
    except ImportError:
        console.warn("--visualdl: visualdl is not installed (pip install visualdl); no VisualDL logs written")
        return None
    return LogWriter(logdir=str(run.path / "visualdl"))
