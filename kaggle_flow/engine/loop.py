"""The training loop's parts that `fit` puts together, each readable on its own.

    state = build_state(config, model, ...)          model, optimizer, schedule, loss, EMA, AMP, mixing
    result = train_one_epoch(state, loader, bar)     the steps of one epoch
    evaluation = evaluate(model, loader, ...)        validation loss, accuracy, metric, recall

The step has one path: mixed precision (`Precision`), the weight average (`EMA`), data parallelism
over processes (`Parallel`, all three in step.py) and mixup/cutmix (`Mixer`, data/mixing.py) are
objects that do nothing when they are off (one process: no DataParallel wrapper, no collective).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import paddle
from rich.progress import TextColumn

from kaggle_flow import console
from kaggle_flow.config import RunConfig
from kaggle_flow.data.mixing import Mixer
from kaggle_flow.engine import optim
from kaggle_flow.engine.step import EMA, ONE_PROCESS, Parallel, Precision
from kaggle_flow.errors import FlowError
from kaggle_flow.machine import raise_if_terminated
from kaggle_flow.metrics import METRICS
from kaggle_flow.thresholds import epoch_score
from kaggle_flow.target import TARGETS, Target

if TYPE_CHECKING:
    from kaggle_flow.data.loader import Loader


def seed_everything(seed: int) -> None:
    """paddle (dropout, init), numpy and Python's random from one number."""
    paddle.seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@dataclass
class TrainState:
    """Everything a step changes or uses, built once per run."""

    config: RunConfig
    model: paddle.nn.Layer
    optimizer: paddle.optimizer.Optimizer
    schedule: paddle.optimizer.lr.LRScheduler
    loss_fn: optim.LossFn
    ema: EMA
    precision: Precision
    mixer: Mixer
    place: str = "cpu"  # "cpu" or "gpu"
    parallel: Parallel = field(default_factory=Parallel)
    net: paddle.nn.Layer | None = None  # what the step calls: `model`, or paddle.DataParallel over it

    def __post_init__(self) -> None:
        if self.net is None:
            self.net = self.parallel.wrap(self.model, freezing=bool(self.config.freeze or self.config.freeze_epochs))


def build_state(
    config: RunConfig, model: paddle.nn.Layer, *, train_labels: np.ndarray, steps_per_epoch: int, place: str = "cpu",
    parallel: Parallel = ONE_PROCESS,
) -> TrainState:
    """Optimizer, schedule (stepped per iteration), loss, EMA, precision and mixing from the config.

    `model` is the one `parallel.prepare` gave (SyncBatchNorm with --sync-bn); the DataParallel
    wrapper comes last, over the model as mixed precision left it.
    """
    schedule = optim.SCHEDULES[config.schedule].build(
        config.peak_lr, total_steps=config.epochs * steps_per_epoch, warmup_steps=round(config.warmup_epochs * steps_per_epoch)
    )
    optimizer = optim.OPTIMIZERS[config.optimizer].build(schedule, model.parameters(), config.weight_decay)
    precision = Precision(config.amp if place == "gpu" else "off")
    optimizer = precision.prepare(model, optimizer)
    loss_fn = optim.LOSSES[config.loss].build(train_labels=train_labels, num_classes=config.num_classes, gamma=config.focal_gamma,
                                              target=TARGETS[config.target])
    return TrainState(
        config=config, model=model, optimizer=optimizer, schedule=schedule, loss_fn=loss_fn,
        ema=EMA(model, config.ema), precision=precision,
        mixer=Mixer(config.mixup, config.cutmix, config.seed), place=place, parallel=parallel,
    )


# --- one epoch ------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """'45 s', '4 min', '1 h 20 min': how long, as a person says it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {round(seconds % 3600 / 60)} min"


class Reporter:
    """Progress of the steps, in the form the output can show, plus the time estimate.

    On a terminal: a rich bar per epoch. To a pipe or file: a plain line every `every` seconds, so a
    log shows progress instead of minutes of silence. With FLOW_NO_PROGRESS set: neither. In every
    case, once the first steps have run, one line with the expected time of the whole run, and on
    a CPU a warning naming faster flags when that passes 30 minutes. Rates count the images of all
    `world` processes; `quiet` (the processes other than rank 0) shows nothing.
    """

    ESTIMATE_AFTER = 3.0  # s of steps (or 20 steps) before the time estimate
    SLOW = 30 * 60  # s: a CPU run estimated above this gets a warning

    def __init__(
        self, config: RunConfig, steps: int, *, first_epoch: int, place: str, faster: str = "", every: float = 10.0,
        world: int = 1, quiet: bool = False,
    ) -> None:
        self.config, self.steps, self.first_epoch, self.place, self.faster = config, steps, first_epoch, place, faster
        # quiet: as if estimated already, so `wants` never asks this process to sync for the reporter
        self.every, self.last_line, self.estimated, self.world = every, time.perf_counter(), quiet, world
        self.epoch, self.bar, self.task = first_epoch, None, None
        quiet = quiet or bool(os.environ.get("FLOW_NO_PROGRESS"))
        self.plain = not quiet and not console.err.is_terminal
        if not quiet and console.err.is_terminal:
            self.bar = console.progress_bar(TextColumn("{task.fields[stats]}"))
            self.task = self.bar.add_task("", total=steps, stats="")

    def __enter__(self) -> Reporter:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.bar is not None:
            self.bar.reset(self.task, total=self.steps, description=f"epoch {epoch}/{self.config.epochs}", stats="")

    def wants(self, step: int, elapsed: float) -> bool:
        """Whether step `step` should sync with the device to report (the loop syncs only then)."""
        due = not self.estimated and (elapsed >= self.ESTIMATE_AFTER or step >= 20)
        return due or (self.bar is not None and step % 10 == 0) or (self.plain and time.perf_counter() - self.last_line >= self.every)

    def step(self, step: int, seen: int, elapsed: float, stats: str) -> None:
        rate = seen * self.world / max(elapsed, 1e-9)
        steps_left = (self.config.epochs - self.epoch) * self.steps + self.steps - step
        left = steps_left * elapsed / step  # validation not counted: it costs a fraction of a training pass
        if not self.estimated and (elapsed >= self.ESTIMATE_AFTER or step >= 20):
            self.estimated = True
            self._estimate(rate, elapsed + left)
        if self.bar is not None:
            self.bar.update(self.task, completed=step, stats=f"{stats}  {rate:.0f} img/s")
        elif self.plain and time.perf_counter() - self.last_line >= self.every:
            self.last_line = time.perf_counter()
            console.err.print(
                f"epoch {self.epoch}/{self.config.epochs}  step {step}/{self.steps}  {stats}  {rate:.0f} img/s  "
                f"about {duration(left)} left", markup=False, highlight=False,
            )

    def _estimate(self, rate: float, total: float) -> None:
        epochs = self.config.epochs - self.first_epoch + 1
        console.info(f"About {duration(total)} for {console.plural(epochs, 'epoch')} ({rate:.0f} images/s)")
        if self.place == "cpu" and total > self.SLOW and self.faster:
            console.warn(f"about {duration(total)} on the CPU; faster: {self.faster}")


@dataclass
class EpochResult:
    loss: float  # mean training loss over the epoch's images (of every process)
    acc: float  # training accuracy (against the un-mixed labels; per label for a multi-label target)
    lr: float  # the learning rate of the epoch's last step
    images: int  # of every process
    seconds: float
    first_loss: float = math.nan  # the loss of the epoch's first step (mean over the processes)


def _out_of_memory(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "out of memory" in text or "resourceexhausted" in text


class Diverged(Exception):
    """Training diverged: the run stops and is marked failed (fit.py says how, in one line)."""


class NonFiniteLoss(Diverged):
    """The loss became NaN or infinite at `step` of the epoch."""

    def __init__(self, step: int, value: float, lr: float) -> None:
        super().__init__(f"loss {value} at step {step}")
        self.step, self.value, self.lr = step, value, lr


class ExplodingLoss(Diverged):
    """An epoch's mean loss rose above EXPLODED times what the run started from (`reference`)."""

    def __init__(self, value: float, reference: float, lr: float) -> None:
        super().__init__(f"loss {value} against {reference} at the start")
        self.value, self.reference, self.lr = value, reference, lr


class NonFiniteWeights(Diverged):
    """`count` of the model's values (weights, BatchNorm statistics) became NaN or infinite."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} weights not finite")
        self.count = count


EXPLODED = 10.0  # an epoch's mean loss this many times the start's: diverged, though finite


def check_loss(result: EpochResult, start: float, chance: float) -> None:
    """Raise ExplodingLoss when the epoch's mean training loss passed EXPLODED x the start's.

    The start is the larger of the run's first step (the model before any update) and `chance`, the
    loss of a model that knows nothing (Target.chance_loss: ln K for one class an image, ln 2 for a
    class's binary cross entropy), so a run starting from good weights still has room.
    A healthy run's loss falls from there; ten times above it the weights have blown up, even while
    every number stays finite (a learning rate far too high ends at chance with a loss of ~50).
    """
    reference = max(start, chance)
    if result.loss > EXPLODED * reference:
        raise ExplodingLoss(result.loss, reference, result.lr)


@paddle.no_grad()
def check_weights(model: paddle.nn.Layer) -> None:
    """Raise NonFiniteWeights when any float value of the model is NaN or infinite (one host sync)."""
    halves, floats = (paddle.float16, paddle.bfloat16), (paddle.float32, paddle.float64)
    values = [v.astype("float32") if v.dtype in halves else v for v in model.state_dict().values() if v.dtype in halves + floats]
    counts = [(~paddle.isfinite(v)).astype("int64").sum() for v in values]  # float32: a kernel on every device
    count = int(paddle.add_n(counts)) if counts else 0
    if count:
        raise NonFiniteWeights(count)


def _check_finite(first_bad: paddle.Tensor, bad_value: paddle.Tensor, lr: float) -> None:
    """Raise NonFiniteLoss when a step's loss was not finite (a host sync: only where the loop syncs anyway)."""
    step = int(first_bad)
    if step:
        raise NonFiniteLoss(step, float(bad_value), lr)


def train_one_epoch(state: TrainState, loader: Loader, reporter: Reporter) -> EpochResult:
    """The steps of one epoch. Running sums stay tensors: the host syncs only when the reporter asks,
    and the processes sum them once, at the end.

    The first step whose loss is not finite is kept on the device too, and raises NonFiniteLoss at
    the next sync: a diverged run stops there instead of training on NaN weights.
    """
    model, k, smoothing = state.model, state.config.num_classes, state.config.label_smoothing
    target = TARGETS[state.config.target]
    model.train()
    t0, seen, lr = time.perf_counter(), 0, state.optimizer.get_lr()
    loss_sum, correct = paddle.zeros([]), paddle.zeros([])
    first_bad, bad_value, first_loss = paddle.zeros([], dtype="int64"), paddle.zeros([]), paddle.zeros([])
    with loader.batches() as batches:
        for step, (images, labels) in enumerate(batches, start=1):
            raise_if_terminated()
            truth = target.batch_targets(labels, k)  # float [N, K]; accuracy is counted against these, un-mixed
            images, targets = state.mixer(images, truth)
            if smoothing > 0:
                targets = target.smooth(targets, smoothing)
            try:
                with state.precision.autocast():
                    logits = state.net(images)  # DataParallel averages the gradients over processes in backward
                loss = state.loss_fn(state.precision.float32(logits), targets)
                state.precision.backward_and_step(loss, state.optimizer)
            except Exception as exc:  # paddle's GPU out-of-memory error class differs by version
                if _out_of_memory(exc):
                    size, batch = int(images.shape[-1]), int(images.shape[0])
                    raise FlowError(f"out of GPU memory at --batch-size {batch} and {size} px: try --batch-size {max(1, batch // 2)}") from None
                raise
            state.optimizer.clear_grad()
            lr = state.optimizer.get_lr()
            state.schedule.step()
            state.ema.update(model)
            n = int(truth.shape[0])
            if step == 1:
                first_loss = loss.detach().astype("float32")
            seen += n
            loss_sum += loss.detach() * n
            correct += target.hits(logits.detach(), truth)
            newly_bad = (first_bad == 0) & ~paddle.isfinite(loss.detach())
            first_bad = paddle.where(newly_bad, paddle.full([], step, "int64"), first_bad)
            bad_value = paddle.where(newly_bad, loss.detach(), bad_value)
            elapsed = time.perf_counter() - t0
            if reporter.wants(step, elapsed):
                _check_finite(first_bad, bad_value, lr)
                reporter.step(step, seen, elapsed, f"loss {float(loss_sum) / seen:.4f}  lr {lr:.2e}")
    _check_finite(first_bad, bad_value, lr)
    loss_total, correct_total, seen_total, first_total = state.parallel.sum(loss_sum, correct, paddle.to_tensor(float(seen)), first_loss)
    seconds = time.perf_counter() - t0
    return EpochResult(loss_total / max(seen_total, 1), correct_total / max(seen_total, 1), lr, int(seen_total), seconds,
                       first_total / state.parallel.world)


# --- validation -----------------------------------------------------------------------------------


@paddle.no_grad()
def loader_probs(
    model: paddle.nn.Layer, loader: Loader, target: Target,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> np.ndarray:
    """Probabilities [N, K] over a loader's batches, in its order, by the target's activation (softmax
    or sigmoid; `autocast`: Precision.autocast)."""
    model.eval()
    out = []
    with loader.batches() as batches:
        for images, _ in batches:
            with autocast():
                logits = model(images)
            out.append(target.activate(logits.astype("float32")).numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, 0), np.float32)


@dataclass
class Evaluation:
    probs: np.ndarray  # [N, K]
    pred: np.ndarray  # [N] class indices, or [N, K] 0/1 at 0.5 (target.decide)
    loss: float
    acc: float  # accuracy, or per-label accuracy for a multi-label target
    metric: float  # the competition's metric
    recall: np.ndarray  # [K] per-class recall
    precision: np.ndarray  # [K] per-class precision


def evaluate(
    model: paddle.nn.Layer, loader: Loader, labels: np.ndarray, config: RunConfig, precision: Precision,
    parallel: Parallel = ONE_PROCESS,
) -> Evaluation:
    """Validation loss, accuracy, the competition metric and per-class recall and precision from the
    probabilities, each as the target defines it (labels: `target.encode`'s; for a thresholded
    target the metric at its best global threshold, thresholds.epoch_score: the per-class thresholds
    are fitted on the best epoch's predictions after training).

    With several processes, each predicts its shard of the loader and gets every shard back, so
    every process computes the figures a single process evaluating all of `labels` would.
    """
    from sklearn.metrics import precision_score, recall_score  # heavy: `flow submit` needs neither

    k, target = config.num_classes, TARGETS[config.target]
    probs = parallel.gather_rows(loader_probs(model, loader, target, precision.autocast))
    pred = target.decide(probs)
    per_class = {"labels": list(range(k)), "average": None, "zero_division": 0}
    recall, precise = recall_score(labels, pred, **per_class), precision_score(labels, pred, **per_class)
    metric = epoch_score(labels, probs, METRICS[config.metric], config.target)
    return Evaluation(probs, pred, target.val_loss(labels, probs), float((pred == labels).mean()), metric, recall, precise)


EpochHook = Callable[[int, dict[str, Any]], None]
