"""The learning-rate finder (`flow lr-find`, `flow train --lr find`): fastai's lr_find on flow's recipe.

    found = find(ws, flags, Sweep())                          the fold's training rows, the recipe, the sweep
    found = sweep_lr(ws, config, train_rows, all_rows, Sweep())   the same for a RunConfig already built
    found.suggestion, found.curve.lrs, found.curve.smoothed, found.png

One training step per learning rate, the rates rising exponentially from `start` to `end`
(paddle's LambdaDecay stepped per iteration: lr_i = start * (end / start) ** (i / (steps - 1))).
The training loss is smoothed by a moving average (beta 0.98, bias-corrected), and the sweep stops
once the smoothed loss passes 4x its lowest. The suggestion is fastai's "valley": the longest
stretch over which the smoothed loss keeps falling, and in it the point about half-way (a third
plus a sixth of its length): where the loss falls fastest, well before it turns up.

The model and optimizer are built fresh and discarded: no run folder is made; what stays is the
plot, runs/COMP/lr_find.png (and the image cache, which training shares).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import paddle
import pandas as pd

from kaggle_flow import console, models
from kaggle_flow.config import Flags, RunConfig
from kaggle_flow.engine.configure import resolve_config
from kaggle_flow.engine.fold_data import FoldData, build_caches
from kaggle_flow.engine.loop import seed_everything
from kaggle_flow.engine.optim import LOSSES, OPTIMIZERS
from kaggle_flow.engine.plots import plot_lr_find
from kaggle_flow.engine.step import Precision
from kaggle_flow.errors import FlowError
from kaggle_flow.explore.split import ensure_folds, train_val
from kaggle_flow.machine import raise_if_terminated, use_device
from kaggle_flow.table.layouts import labelled
from kaggle_flow.target import TARGETS
from kaggle_flow.workspace import cache_dir_of

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

BETA = 0.98  # the smoothing of the loss: an exponential moving average, bias-corrected
DIVERGED = 4.0  # the sweep stops once the smoothed loss passes this many times its lowest
TRIM_END = 5  # the last steps the valley never suggests (with the first tenth: fastai's trimming)


@dataclass(frozen=True)
class Sweep:
    """The learning rates tried: `steps` of them, from `start` to `end`, evenly apart on a log scale."""

    start: float = 1e-7
    end: float = 10.0
    steps: int = 100

    def check(self) -> Sweep:
        """One line for a sweep that cannot run (the flags' names, as the user typed them)."""
        if not (math.isfinite(self.start) and self.start > 0):
            raise FlowError(f"--start must be a finite number above 0 (got {self.start!r})")
        if not (math.isfinite(self.end) and self.end > self.start):
            raise FlowError(f"--end must be a finite number above --start {self.start:g} (got {self.end!r})")
        if self.steps < 5:
            raise FlowError(f"--steps must be 5 or more (got {self.steps})")
        return self

    @property
    def gamma(self) -> float:
        """The factor from one step's rate to the next."""
        return (self.end / self.start) ** (1 / (self.steps - 1))

    def schedule(self) -> paddle.optimizer.lr.LRScheduler:
        """lr_i = start * gamma ** i, stepped per iteration (ExponentialDecay asserts a decay: gamma < 1)."""
        gamma = self.gamma
        return paddle.optimizer.lr.LambdaDecay(self.start, lr_lambda=lambda i: gamma**i)


@dataclass(frozen=True)
class Curve:
    """What the sweep saw, step by step (as many steps as ran)."""

    lrs: np.ndarray
    losses: np.ndarray  # the training loss of each step
    smoothed: np.ndarray  # BETA's moving average of it, bias-corrected
    stopped: bool  # the smoothed loss passed DIVERGED x its lowest (or a loss was not finite) before the last step


@dataclass(frozen=True)
class Found:
    curve: Curve
    index: int  # the suggested step
    png: Path

    @property
    def suggestion(self) -> float:
        """The suggested learning rate to two significant digits: what the printed command says."""
        return float(f"{self.curve.lrs[self.index]:.1e}")


def record(step: Callable[[int], tuple[float, float]], steps: int, advance: Callable[[], None] = lambda: None) -> Curve:
    """Run `step(i)` (one training step: the (lr, loss) it used) until `steps` or the loss diverges."""
    lrs, losses, smoothed = [], [], []
    average, lowest = 0.0, math.inf
    for i in range(steps):
        lr, loss = step(i)
        average = BETA * average + (1 - BETA) * loss
        value = average / (1 - BETA ** (i + 1))
        lrs.append(lr), losses.append(loss), smoothed.append(value)
        advance()
        if not math.isfinite(value) or value > DIVERGED * lowest:
            return Curve(np.array(lrs), np.array(losses), np.array(smoothed), stopped=i < steps - 1)
        lowest = min(lowest, value)
    return Curve(np.array(lrs), np.array(losses), np.array(smoothed), stopped=False)


def valley(losses: Sequence[float]) -> int:
    """fastai's valley: the index a third plus a sixth into the longest strictly falling run of `losses`.

    lds[i] is the length of the longest falling subsequence ending at i; the longest one ends at
    `end` and `start` = end - lds[end] (one before its first point, as fastai counts), updated only
    when a new longest is found.
    """
    n = len(losses)
    lds, start, end = [1] * n, 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[end] < lds[i]:
                end, start = i, i - lds[i]
    third = (end - start) / 3
    return max(0, start + int(third) + int(third / 2))  # start is -1 for a fall from index 0: never the last index


def suggest(curve: Curve, planned: int) -> int:
    """The valley of the smoothed loss, leaving out the first tenth of the planned steps and the last
    TRIM_END (noise at the start, the blow-up at the end), as fastai does; the whole curve when that leaves too little."""
    first, last = planned // 10, len(curve.smoothed) - TRIM_END
    if last - first < 3:
        first, last = 0, len(curve.smoothed)
    return first + min(valley(list(curve.smoothed[first:last])), last - first - 1)


def find(ws: Workspace, flags: Flags, sweep: Sweep, *, strict: bool = False) -> Found:
    """The sweep with `flow train`'s automatic recipe on fold `flags.fold` (0) of runs/COMP/folds.csv."""
    sweep.check()
    table = ws.table(strict=strict)
    rows = labelled(table)
    train_rows = train_val(rows, ensure_folds(ws, table), flags.fold or 0)[0]
    config = resolve_config(ws, flags, train_rows=train_rows)
    return sweep_lr(ws, config, train_rows, rows, sweep)


def sweep_lr(ws: Workspace, config: RunConfig, train_rows: pd.DataFrame, all_rows: pd.DataFrame, sweep: Sweep) -> Found:
    """Sweep the learning rate on a fresh model of `config`, plot it, and say what it suggests."""
    console.info(f"Learning-rate finder: {config.model} at {config.image_size} px, batch {config.batch_size}, {config.optimizer}; "
                 f"lr {sweep.start:.0e} to {sweep.end:g} over {sweep.steps} steps")
    data = FoldData(config, train_rows, train_rows.iloc[0:0], build_caches(config, all_rows, cache_dir_of(ws.runs_dir)), None)
    with paddle.utils.unique_name.guard(), _bar(sweep.steps) as advance:
        curve = record(_stepper(config, data, sweep), sweep.steps, advance)
    index = suggest(curve, sweep.steps)
    png = plot_lr_find(curve.lrs, curve.smoothed, index, ws.runs_dir / "lr_find.png")
    found = Found(curve, index, png)
    at = f"step {len(curve.lrs)} of {sweep.steps} (lr {curve.lrs[-1]:.1e})"
    console.info(f"Stopped at {at}: the smoothed loss passed {DIVERGED:g}x its lowest" if curve.stopped 
                 else f"Swept all {sweep.steps} steps: the smoothed loss stayed under {DIVERGED:g}x its lowest")
    console.info(f"Suggested lr {found.suggestion:.1e} (valley: the longest fall of the smoothed loss); plot: {png}")
    return found


def _stepper(config: RunConfig, data: FoldData, sweep: Sweep) -> Callable[[int], tuple[float, float]]:
    """One training step per call on the recipe's model, loss and optimizer under the sweep's schedule."""
    seed_everything(config.seed)
    place = use_device()
    model = models.create_model(config.model, config.num_classes, in_channels=config.channels, image_size=config.image_size,
                                 pretrained=config.pretrained, weights=config.weights)
    if config.freeze or config.freeze_epochs:  # as the run's first epoch trains
        models.set_backbone_trainable(model, config.model, not config.frozen(1))
    schedule, precision = sweep.schedule(), Precision(config.amp if place == "gpu" else "off")
    optimizer = precision.prepare(model, OPTIMIZERS[config.optimizer].build(schedule, model.parameters(), config.weight_decay))
    target = TARGETS[config.target]
    loss_fn = LOSSES[config.loss].build(train_labels=data.train_labels, num_classes=config.num_classes, gamma=config.focal_gamma,
                                        target=target)
    batches = _batches(data)
    model.train()

    def step(i: int) -> tuple[float, float]:
        raise_if_terminated()
        images, labels = next(batches)
        targets = target.batch_targets(labels, config.num_classes)
        if config.label_smoothing > 0:
            targets = target.smooth(targets, config.label_smoothing)
        lr = optimizer.get_lr()
        with precision.autocast():
            logits = model(images)
        loss = loss_fn(precision.float32(logits), targets)
        precision.backward_and_step(loss, optimizer)
        optimizer.clear_grad()
        schedule.step()
        return lr, float(loss)  # a host sync every step: the sweep stops on the value

    return step


def _batches(data: FoldData) -> Iterator[tuple[paddle.Tensor, paddle.Tensor]]:
    """Training batches for as long as the sweep asks, epoch after epoch (seeded as training seeds them)."""
    epoch = 0
    while True:
        epoch += 1
        with data.train_loader(epoch, data.config.image_size).batches() as batches:
            yield from batches


@contextlib.contextmanager
def _bar(steps: int) -> Iterator[Callable[[], None]]:
    """A rich bar of the sweep's steps on a terminal (none to a pipe or with FLOW_NO_PROGRESS), as training shows one."""
    if os.environ.get("FLOW_NO_PROGRESS") or not console.err.is_terminal:
        yield lambda: None
        return
    bar = console.progress_bar()
    task = bar.add_task("lr sweep", total=steps)
    with bar:
        yield lambda: bar.advance(task)
