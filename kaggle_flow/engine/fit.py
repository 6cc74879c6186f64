"""One run's training, `fit`: the model, its data and state, then the epochs and what they leave.

    fit(run, train_rows, val_rows, all_rows)
      model, FoldData (fold_data.py), TrainState (loop.build_state), the last checkpoint (--resume)
      per epoch: train_one_epoch, evaluate (with the EMA weights), the checkpoints, the run log
      at the end: the best model's out-of-fold predictions, plots, summary.json (runlog.py)

Every random draw of an epoch is seeded from (seed, epoch): paddle (dropout), the sampling order,
the augmentations, label shuffling, mixup/cutmix. A run is therefore repeatable on CPU, and
`--resume` replays the remaining epochs exactly as an uninterrupted run would have. Every process
of a data-parallel run runs the same epochs and takes the same decisions (the validation score is
every process's); rank 0 alone writes (its Checkpointer and RunLog; the others' do nothing).
"""

from __future__ import annotations

import math
from typing import Any

import paddle
import pandas as pd

from kaggle_flow import models
from kaggle_flow.config import RunConfig
from kaggle_flow.engine.checkpoint import Checkpointer, Progress
from kaggle_flow.engine.fold_data import FoldData, prepare_data
from kaggle_flow.engine.loop import (
    EXPLODED,
    Diverged,
    EpochHook,
    EpochResult,
    Evaluation,
    ExplodingLoss,
    NonFiniteLoss,
    Reporter,
    TrainState,
    build_state,
    check_loss,
    check_weights,
    evaluate,
    seed_everything,
    train_one_epoch,
)
from kaggle_flow.engine.recipe import CPU_SIZE, FAMILY
from kaggle_flow.engine.runlog import RunLog
from kaggle_flow.engine.step import Parallel, check_amp
from kaggle_flow.errors import FlowError, TrainingDiverged, TrainingInterrupted
from kaggle_flow.machine import terminated, use_device
from kaggle_flow.metrics import METRICS
from kaggle_flow.runs import FAILED, Run, Summary
from kaggle_flow.target import TARGETS


def fit(
    run: Run, train_rows: pd.DataFrame, val_rows: pd.DataFrame, all_rows: pd.DataFrame, *,
    parallel: Parallel, resume: bool = False, on_epoch_end: EpochHook | None = None, class_names: list[str] | None = None,
) -> Summary:
    """Train run's model on train_rows, validate on val_rows each epoch; return its summary.

    `parallel`: the processes training together, joined. paddle names parameters and optimizer
    slots from a process-wide counter and keys the optimizer's state by those names; a fresh name
    scope per run gives them the same names in every process, so a checkpoint loads into a resumed run.
    """
    log = RunLog.open(run, parallel, class_names)
    with paddle.utils.unique_name.guard():
        return _fit(run, train_rows, val_rows, all_rows, resume=resume, on_epoch_end=on_epoch_end, parallel=parallel, log=log)


def _fit(
    run: Run, train_rows: pd.DataFrame, val_rows: pd.DataFrame, all_rows: pd.DataFrame, *,
    resume: bool, on_epoch_end: EpochHook | None, parallel: Parallel, log: RunLog,
) -> Summary:
    config = log.config
    place = use_device()
    if parallel.world != config.world_size:
        raise FlowError(f"{run.path}: a run of {config.world_size} processes, here in {parallel.world}")
    if config.amp != "off" and place != "gpu":
        log.info("--amp: mixed precision needs a GPU; training in float32 on the CPU")
    check_amp(config.amp, place)
    seed_everything(config.seed)
    model = models.create_model(
        config.model, config.num_classes, in_channels=config.channels, image_size=config.image_size,
        pretrained=config.pretrained and not resume, weights=None if resume else config.weights,
    )
    log.params = models.count_params(model)
    models.check_params(log.params, config.max_params, config.model)
    data = prepare_data(config, run, train_rows, val_rows, all_rows, rank=parallel.rank, world=parallel.world, report=parallel.is_main)
    state = build_state(config, parallel.prepare(model), train_labels=data.train_labels,
                        steps_per_epoch=data.steps_per_epoch, place=place, parallel=parallel)
    checkpointer = Checkpointer(run, writes=parallel.is_main)
    progress = _resume(state, checkpointer, log) if resume else Progress()
    log.announce(data, state)
    with log:  # VisualDL's writer, open for the epochs
        status = _epochs(state, data, checkpointer, progress, log, on_epoch_end)
    return log.finish(state, data, progress, status)


def _resume(state: TrainState, checkpointer: Checkpointer, log: RunLog) -> Progress:
    """The last checkpoint loaded into `state` (in every process): the progress it had reached."""
    config = state.config
    progress = checkpointer.resume(state)
    progress.timing = progress.timing[: progress.epoch]
    if progress.epoch >= config.epochs or progress.stopped:
        raise FlowError(f"{checkpointer.run.path}: already finished ({progress.epoch} of {config.epochs} epochs); nothing to resume")
    log.resumed(progress)
    return progress


def faster_flags(config: RunConfig) -> str:
    """Flags that would make a slow CPU run faster, for the warning."""
    flags = []
    if config.image_size > CPU_SIZE:
        flags.append(f"--size {CPU_SIZE}")
    if config.model not in (*FAMILY[:2], "smallcnn", "lenet"):
        flags.append(f"--model {FAMILY[1]}")
    if config.epochs > 10:
        flags.append(f"--epochs {max(5, config.epochs // 2)}")
    return ", ".join(flags)


def _epochs(
    state: TrainState, data: FoldData, checkpointer: Checkpointer, progress: Progress, log: RunLog,
    on_epoch_end: EpochHook | None,
) -> str:
    """The epochs after progress.epoch; the run's status. Ctrl-C leaves the last finished epoch to resume."""
    config, run = state.config, checkpointer.run
    try:
        reporter = Reporter(config, data.steps_per_epoch, first_epoch=progress.epoch + 1, place=state.place,
                            faster=faster_flags(config), world=data.world, quiet=not state.parallel.is_main)
        with reporter:
            for epoch in range(progress.epoch + 1, config.epochs + 1):
                row = _epoch(state, data, checkpointer, progress, log, reporter, epoch)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, row)
                if progress.stopped:
                    log.info(f"No improvement in {config.patience} epochs: stopping early after epoch {epoch}")
                    return "stopped early"
    except Diverged as exc:
        why = _diverged(config, progress.epoch + 1, exc, data.steps_per_epoch)
        log.write_summary(FAILED, progress, reason=why)
        raise TrainingDiverged(f"{why}; {run.path} is marked failed") from None
    except (KeyboardInterrupt, Exception) as exc:
        # a signal may have stopped what the step waited on first (a DataLoader worker, a peer): an interrupt all the same
        if not isinstance(exc, KeyboardInterrupt) and not terminated():
            raise
        if not checkpointer.has_last():
            raise KeyboardInterrupt from None  # nothing saved: train() removes the run folder
        log.write_summary("interrupted", progress)
        raise TrainingInterrupted(
            f"interrupted after epoch {progress.epoch} of {config.epochs}; continue with: "
            f"flow train {config.competition} --resume {run.id.split('/')[0]}"
        ) from None
    return "finished"


def _epoch(
    state: TrainState, data: FoldData, checkpointer: Checkpointer, progress: Progress, log: RunLog, reporter: Reporter,
    epoch: int,
) -> dict[str, Any]:
    """Train, validate and checkpoint one epoch; its row of metrics.csv."""
    config = state.config
    result, size = _train_epoch(state, data, reporter, epoch)
    if progress.first_loss is None:  # the run's first step: what an exploding loss is measured against
        progress.first_loss = result.first_loss
    check_loss(result, progress.first_loss, TARGETS[config.target].chance_loss(config.num_classes))
    state.parallel.average_buffers(state.model, state.ema.shadow)
    with state.ema.applied(state.model):  # validate and keep the averaged weights under --ema
        check_weights(state.model)  # never a best (or last) checkpoint of NaN weights
        evaluation = _validate(state, data)
        score, loss = (evaluation.metric, evaluation.loss) if evaluation is not None else (math.nan, math.nan)
        improved = progress.record(epoch, score, loss, METRICS[config.metric], len(data.val_rows))
        if improved:
            checkpointer.save_best(state.model)
    row = _epoch_row(config, epoch, size, result, evaluation)
    images_per_s = round(result.images / max(result.seconds, 1e-9), 1)
    progress.timing.append({"epoch": epoch, "seconds": round(result.seconds, 2), "images_per_s": images_per_s})
    progress.stopped = bool(config.patience) and progress.stale >= config.patience and epoch < config.epochs
    checkpointer.save_last(state, progress)
    log.epoch(row, improved, images_per_s)
    return row


def _diverged(config: RunConfig, epoch: int, exc: Diverged, steps: int) -> str:
    """What a user reads when training diverges (a loss or weights not finite, a loss exploding): where, and the likely cause."""
    cause = f"the learning rate is likely too high for this model (--lr {config.lr:g}; try --lr {config.lr / 10:g})"
    if config.amp != "off":
        cause += " or float16 overflowed (try without --amp)"
    if isinstance(exc, NonFiniteLoss):
        what = f"loss became {exc.value} at epoch {epoch}, step {exc.step} of {steps} (lr {exc.lr:.2e})"
    elif isinstance(exc, ExplodingLoss):
        what = (f"loss exploded to {exc.value:.4g} in epoch {epoch}, over {EXPLODED:g}x the {exc.reference:.4g} it started from "
                f"(lr {exc.lr:.2e})")
    else:  # NonFiniteWeights
        what = f"{exc.count:,} weights became NaN or infinite in epoch {epoch}"
    return f"{what}: training diverged; {cause}"


def _train_epoch(state: TrainState, data: FoldData, reporter: Reporter, epoch: int) -> tuple[EpochResult, int]:
    """One epoch's training steps at its size, with its seeds, loader and trainable layers."""
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


def _epoch_row(config: RunConfig, epoch: int, size: int, result: EpochResult, e: Evaluation | None) -> dict[str, Any]:
    """One line of metrics.csv (no validation columns for a full refit)."""
    row = {"epoch": epoch, "size": size, "lr": result.lr, "train_loss": result.loss, "train_acc": result.acc}
    if e is not None:
        row.update(val_loss=e.loss, val_acc=e.acc, val_metric=e.metric)
        row.update({f"recall_{name}": float(r) for name, r in zip(config.classes, e.recall)})
    return row
