"""A run's checkpoints: the best weights, and the last full state that `--resume` continues from.

    best.pdparams                  the weights of the best epoch (the EMA's under --ema)
    last.pdparams, last.pdopt      the weights and optimizer slots after the last finished epoch
    last.pdstate                   LastState: the config, schedule, EMA, loss scaler and Progress

No random generator's state is kept: every epoch reseeds paddle, numpy, Python's random, the
sampling order, the augmentations, label shuffling and mixup/cutmix from (seed, epoch) (fit.py), so
the epochs after a checkpoint draw what they would have drawn in one uninterrupted run.

Each is written to a temp file and renamed (the three `last` files together, after all are
written), so a checkpoint on disk is always whole. One that is not (a disk that failed, a copy cut
short) is refused in one line naming the file before anything resumes from it.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import paddle

from kaggle_flow.config import RunConfig, load_config
from kaggle_flow.engine.step import ema_misfit
from kaggle_flow.errors import FlowError
from kaggle_flow.fileio import atomic_path, ensure_free_space, reap_temps
from kaggle_flow.metrics import Best
from kaggle_flow.models.state_file import UnreadableState, read_state
from kaggle_flow.models.weights import set_weights

if TYPE_CHECKING:
    from kaggle_flow.metrics import Metric
    from kaggle_flow.engine.loop import TrainState
    from kaggle_flow.runs import Run


@dataclass
class Progress:
    """Where a run stands after its last finished epoch: what `--resume` continues from."""

    epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    stale: int = 0  # epochs since the best one
    stopped: bool = False  # early stopping ended the run
    timing: list[dict[str, float]] = field(default_factory=list)
    first_loss: float | None = None  # mean loss of the run's first steps: what an exploding loss is measured against

    best_loss: float = math.inf  # the best epoch's validation loss: a later tie goes to a lower one
    tied_from: int = 0  # the epoch the best score was first reached (0: none yet)

    @property
    def best(self) -> Best:
        return Best(self.best_epoch, self.best_score, self.best_loss, self.tied_from)

    def record(self, epoch: int, score: float, loss: float, metric: Metric, n_val: int) -> bool:
        """Count the epoch; True when it is the best so far by the rule of metrics.Best (the metric,
        ties within one image's worth to the lower val loss); always, with no score: nothing held out."""
        self.epoch = epoch
        if math.isnan(score):
            self.best_epoch, self.stale = epoch, 0
            return True
        best = self.best.after(epoch, score, loss, metric, n_val)
        if best is None:
            self.stale += 1
            return False
        self.best_epoch, self.best_score, self.best_loss, self.tied_from, self.stale = best.epoch, best.score, best.loss, best.tied_from, 0
        return True


@dataclass
class LastState:
    """last.pdstate: what the weights and optimizer slots do not hold, as one flat dict on disk."""

    config: dict[str, Any]  # RunConfig.model_dump(mode="json"), validated again on load
    schedule: dict[str, Any]
    ema: dict[str, Any] | None  # None: --ema off
    scaler: dict[str, Any] | None  # None: no float16 loss scaling
    progress: Progress

    def as_dict(self) -> dict[str, Any]:
        p = self.progress
        return {
            "config": self.config, "schedule": self.schedule, "ema": self.ema, "scaler": self.scaler,
            "epoch": p.epoch, "best_score": p.best_score, "best_epoch": p.best_epoch,
            "stale": p.stale, "stopped": p.stopped, "timing": p.timing, "first_loss": p.first_loss,
            "best_loss": p.best_loss, "tied_from": p.tied_from,
        }

    def save(self, path: Path) -> None:
        paddle.save(self.as_dict(), str(path))

    @classmethod
    def load(cls, path: Path, competition: str) -> LastState:
        """The state saved at `path`; its config validated again, like config.json."""
        saved = load_checkpoint(path, competition)
        try:
            load_config(saved["config"], path)
            progress = Progress(
                epoch=int(saved["epoch"]), best_score=float(saved["best_score"]), best_epoch=int(saved["best_epoch"]),
                stale=int(saved["stale"]), stopped=bool(saved.get("stopped")), timing=list(saved.get("timing", [])),
                first_loss=saved.get("first_loss"),  # checkpoints before the tie rule: no loss, the next tie wins
                best_loss=float(saved.get("best_loss", math.inf)), tied_from=int(saved.get("tied_from", saved["best_epoch"])),
            )
            # an older checkpoint's "rng" (paddle's generator states, read as data) is left unread: epochs reseed
            return cls(saved["config"], saved["schedule"], saved.get("ema"), saved.get("scaler"), progress)
        except (KeyError, TypeError, ValueError):
            raise unreadable(path, competition) from None


def unreadable(path: Path, competition: str, why: str = "cannot be read (truncated or damaged)") -> FlowError:
    return FlowError(f"{path}: {why}; the run cannot resume: start anew with flow train {competition}")


def load_checkpoint(path: Path, competition: str) -> Any:
    """What a checkpoint file holds, read by models.state_file (arrays and numbers only, never code it
    names), with a file it cannot parse (truncated, empty, damaged) as one line naming it."""
    try:
        return read_state(path)
    except UnreadableState:
        raise unreadable(path, competition) from None


def model_description(config: RunConfig) -> str:
    """The model a run's weights files must fit, as errors name it."""
    return f"the run's {config.model} ({config.num_classes} classes)"


def _as_tensors(slots: Any) -> Any:
    """Optimizer slots read as numpy, as tensors (what paddle.load gave): the master weights stay tensors."""
    if isinstance(slots, dict):
        return {key: _as_tensors(value) for key, value in slots.items()}
    return paddle.to_tensor(slots) if isinstance(slots, np.ndarray) else slots


def state_bytes(*states: Any) -> int:
    """Bytes of the tensors in (nested) state dicts: about what paddle.save writes of them."""
    total, stack = 0, list(states)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, paddle.Tensor):
            total += math.prod(item.shape) * item.element_size()
        elif isinstance(item, np.ndarray):
            total += item.nbytes
    return total


class Checkpointer:
    """The best weights and the last full checkpoint of a run, each written to temp files and renamed.

    `writes=False` (a data-parallel process other than rank 0) saves nothing and still resumes.
    """

    def __init__(self, run: Run, *, writes: bool = True) -> None:
        self.run, self.writes = run, writes
        if writes:
            reap_temps(run.path)  # what a kill -9 left of an earlier checkpoint

    def save_best(self, model: paddle.nn.Layer) -> None:
        if not self.writes:
            return
        weights = model.state_dict()
        ensure_free_space(self.run.path, state_bytes(weights), f"the checkpoint {self.run.best.name}")
        with atomic_path(self.run.best) as tmp:
            paddle.save(weights, str(tmp))

    def save_last(self, state: TrainState, progress: Progress) -> None:
        """last.pdparams, last.pdopt, last.pdstate: renamed together after all are written."""
        if not self.writes:
            return
        last = LastState(
            config=state.config.model_dump(mode="json"), schedule=state.schedule.state_dict(), ema=state.ema.state_dict(),
            scaler=state.precision.state_dict(), progress=progress,
        )
        weights, slots = state.model.state_dict(), state.optimizer.state_dict()
        names = ", ".join(p.name for p in (self.run.last, self.run.last_opt, self.run.last_state))
        ensure_free_space(self.run.path, state_bytes(weights, slots, last.as_dict()), f"the checkpoint {names}")
        with contextlib.ExitStack() as stack:
            tmp_params = stack.enter_context(atomic_path(self.run.last))
            tmp_opt = stack.enter_context(atomic_path(self.run.last_opt))
            tmp_state = stack.enter_context(atomic_path(self.run.last_state))
            paddle.save(weights, str(tmp_params))
            paddle.save(slots, str(tmp_opt))
            last.save(tmp_state)

    def has_last(self) -> bool:
        return all(p.is_file() for p in (self.run.last, self.run.last_opt, self.run.last_state))

    def check_last(self) -> None:
        """Refuse, in one line naming the file, a last checkpoint that cannot be read whole."""
        competition = self.run.config.competition
        last = LastState.load(self.run.last_state, competition)
        weights = load_checkpoint(self.run.last, competition)
        load_checkpoint(self.run.last_opt, competition)
        if self.run.config.ema > 0 and isinstance(weights, dict):  # EMA averages the float weights (step.EMA)
            shapes = {k: list(np.shape(v)) for k, v in weights.items() if np.asarray(v).dtype in (np.float32, np.float64)}
            why = ema_misfit(last.ema, shapes, self.run.config.ema)
            if why:
                raise unreadable(self.run.last_state, competition, f"holds {why}")

    def resume(self, state: TrainState) -> Progress:
        """Load the last checkpoint into `state`; the progress it had reached."""
        if not self.has_last():
            raise FlowError(f"{self.run.path}: no checkpoint to resume (it stopped before its first epoch ended)")
        competition = self.run.config.competition
        last = LastState.load(self.run.last_state, competition)
        set_weights(state.model, load_checkpoint(self.run.last, competition), self.run.last, model_description(self.run.config))
        slots = _as_tensors(load_checkpoint(self.run.last_opt, competition))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LinearWarmup's nested state reads as "unused values"
            try:
                state.optimizer.set_state_dict(slots)
            except (KeyError, TypeError, ValueError, RuntimeError):
                raise unreadable(self.run.last_opt, competition) from None
            try:
                state.schedule.set_state_dict(last.schedule)  # a key missing: RuntimeError, in paddle's words
                state.precision.set_state_dict(last.scaler)
            except (KeyError, TypeError, ValueError, RuntimeError):
                raise unreadable(self.run.last_state, competition) from None
        try:
            state.ema.set_state_dict(last.ema)
        except ValueError as exc:
            raise unreadable(self.run.last_state, competition, f"holds {exc}") from None
        return last.progress
