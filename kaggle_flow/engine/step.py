"""The step's parts that do nothing when off, so the step in loop.py has one path.

    EMA(model, decay)      the exponential moving average of the weights; decay 0: off
    Precision(mode)        mixed precision (o1, o2, bf16) on a GPU; "off": float32, a no-op scaler
    Parallel.launched()    paddle.DataParallel over the processes paddle.distributed.launch started;
                           one process (Parallel(), ONE_PROCESS): no wrapper, no collective
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any, TypeVar

import numpy as np
import paddle
import paddle.distributed as dist

from kaggle_flow.errors import FlowError

T = TypeVar("T")


class EMA:
    """Exponential moving average of the weights (and BatchNorm statistics); decay 0 turns it off.

    The decay warms up as min(decay, (1 + n) / (10 + n)) over the first updates, so a short run is
    not dominated by the random initial weights.
    """

    def __init__(self, model: paddle.nn.Layer, decay: float) -> None:
        self.decay, self.updates, self.enabled = decay, 0, decay > 0
        floats = (paddle.float32, paddle.float64)
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype in floats} if self.enabled else {}

    @paddle.no_grad()
    def update(self, model: paddle.nn.Layer) -> None:
        if not self.enabled:
            return
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in model.state_dict().items():
            if key in self.shadow:
                self.shadow[key].set_value(self.shadow[key] * d + value.detach() * (1.0 - d))

    @contextlib.contextmanager
    def applied(self, model: paddle.nn.Layer) -> Iterator[None]:
        """Swap the averaged weights in for the block (evaluating, saving)."""
        if not self.enabled:
            yield
            return
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.set_state_dict(self.shadow)
        try:
            yield
        finally:
            model.set_state_dict(backup)

    def state_dict(self) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        return {"updates": self.updates, "shadow": {k: v.numpy() for k, v in self.shadow.items()}}

    def set_state_dict(self, state: dict[str, Any] | None) -> None:
        """Load a saved average; ValueError saying what does not fit (ema_misfit): a resumed run never
        goes on from a fresh average in its place."""
        if not self.enabled:
            return
        why = ema_misfit(state, {k: list(v.shape) for k, v in self.shadow.items()}, self.decay)
        if why:
            raise ValueError(why)
        self.updates = int(state["updates"])  # type: ignore[index]  # ema_misfit checked it
        for key, value in state["shadow"].items():  # type: ignore[index]
            self.shadow[key].set_value(np.asarray(value))


def ema_misfit(state: Any, shapes: dict[str, list[int]], decay: float) -> str | None:
    """What keeps a saved EMA state from the average of weights of these `shapes` (the float weights
    of the model), in words; None when it fits."""
    if not isinstance(state, dict) or not isinstance(state.get("shadow"), dict) or "updates" not in state:
        return f"no EMA weights (the run averages them: --ema {decay:g})"
    shadow = state["shadow"]
    odd = [k for k in shapes if k not in shadow] + [k for k in shadow if k not in shapes]
    if odd:
        return f"EMA weights that do not match the model: {', '.join(odd[:3])}" + (" ..." if len(odd) > 3 else "")
    for key, value in shadow.items():
        if list(np.shape(value)) != shapes[key]:
            return f"the EMA weight {key} of shape {list(np.shape(value))} where the model's is {shapes[key]}"
    return None


AMP_MODES = {  # --amp mode -> paddle.amp level and dtype
    "o1": ("O1", "float16"),  # float32 weights; autocast runs the listed ops in float16
    "o2": ("O2", "float16"),  # float16 weights (float32 master copies in the optimizer)
    "bf16": ("O1", "bfloat16"),  # autocast to bfloat16: float32's range, so no loss scaling
}


class Precision:
    """Mixed precision on a GPU with --amp o1, o2 or bf16: autocast plus a loss scaler; float32 otherwise.

    Off, `autocast()` is a null context and the scaler is paddle's GradScaler(enable=False), which
    passes the loss and the optimizer step straight through. bfloat16 needs no loss scaling (its
    exponent is float32's), so its scaler is off too. `True` means o1 (the `--amp` switch).
    """

    def __init__(self, mode: str | bool = "off") -> None:
        mode = {True: "o1", False: "off"}.get(mode, mode) if isinstance(mode, bool) else mode
        self.mode, self.enabled = mode, mode != "off"
        self.level, self.dtype = AMP_MODES.get(mode, ("O1", "float32"))
        self.scaler = paddle.amp.GradScaler(enable=self.dtype == "float16", init_loss_scaling=2.0**15)

    def prepare(self, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer) -> paddle.optimizer.Optimizer:
        """O2: float16 weights in `model` (saved as float32) and float32 master weights in the optimizer."""
        if self.level != "O2":
            return optimizer
        _, optimizer = paddle.amp.decorate(models=model, optimizers=optimizer, level="O2", dtype=self.dtype, save_dtype="float32")
        return optimizer

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return paddle.amp.auto_cast(level=self.level, dtype=self.dtype) if self.enabled else contextlib.nullcontext()

    def float32(self, logits: paddle.Tensor) -> paddle.Tensor:
        """The logits in float32 for the loss (they already are without autocast)."""
        return logits.astype("float32") if self.enabled else logits

    def backward_and_step(self, loss: paddle.Tensor, optimizer: paddle.optimizer.Optimizer) -> None:
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler.is_enable() else None

    def set_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler.is_enable() and state:
            self.scaler.load_state_dict(state)


def check_amp(mode: str, place: str) -> None:
    """A one-line error for a mode this GPU cannot run (bfloat16 before Ampere)."""
    if mode == "bf16" and place == "gpu" and not paddle.amp.is_bfloat16_supported():
        raise FlowError("--amp-level bf16: this GPU has no bfloat16 arithmetic; use --amp-level o1")


class Parallel:
    """Data parallelism over the processes `paddle.distributed.launch` started; one process: a no-op.

    `wrap` puts paddle.DataParallel around the model for the step (it averages the gradients over
    the processes during backward); everything else keeps the plain model. With one process every
    method passes its input through and no collective runs, so the loop has one path.
    """

    def __init__(self, world: int = 1, rank: int = 0, *, sync_bn: bool = False) -> None:
        self.world, self.rank = world, rank
        self.enabled, self.sync_bn = world > 1, sync_bn and world > 1

    @classmethod
    def launched(cls, sync_bn: bool = False) -> Parallel:
        """This process among those paddle.distributed.launch started, as its environment says (a
        process started alone: one of one); `join` then joins their process group."""
        return cls(dist.get_world_size(), dist.get_rank(), sync_bn=sync_bn)

    def join(self) -> Parallel:
        if self.enabled and not dist.is_initialized():
            with contextlib.redirect_stderr(io.StringIO()):  # paddle prints its modified FLAGS here
                dist.init_parallel_env()
        return self

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder (rank 0)."""
        return self.rank == 0

    def prepare(self, model: paddle.nn.Layer) -> paddle.nn.Layer:
        """The model to train: with --sync-bn, BatchNorm layers that share statistics (same weights)."""
        return paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model) if self.sync_bn else model

    def wrap(self, model: paddle.nn.Layer, *, freezing: bool = False) -> paddle.nn.Layer:
        """What the step calls: DataParallel reduces the gradients of the parameters trainable now.

        `freezing`: some of them will be frozen for a while (--freeze, --freeze-epochs), so each
        step finds which got no gradient. Wrap once: a second wrapper over the same parameters
        leaves the first one's hooks behind.
        """
        return paddle.DataParallel(model, find_unused_parameters=freezing) if self.enabled else model

    def sum(self, *values: paddle.Tensor) -> list[float]:
        """Each value summed over the processes (one all-reduce), as floats."""
        if not self.enabled:
            return [float(v) for v in values]
        stacked = paddle.concat([v.astype("float64").reshape([1]) for v in values])
        dist.all_reduce(stacked)
        return [float(v) for v in stacked.numpy()]

    @paddle.no_grad()
    def average_buffers(self, model: paddle.nn.Layer, *more: dict[str, paddle.Tensor]) -> None:
        """Average what the gradients do not keep equal (BatchNorm statistics), in `model` and in
        state dicts with its keys (the EMA's), so that every process evaluates and saves the same model."""
        if not self.enabled:
            return
        floats = (paddle.float16, paddle.bfloat16, paddle.float32, paddle.float64)
        state = model.state_dict()
        keys = [k for k, v in state.items() if v.stop_gradient and v.dtype in floats]
        for tensors in (state, *more):
            for key in keys:
                if key in tensors:
                    value = tensors[key]
                    dist.all_reduce(value)
                    value.set_value(value / self.world)

    def from_main(self, value: T) -> T:
        """Rank 0's value in every process (a broadcast); one process: the value itself."""
        if not self.enabled:
            return value
        shared = [value]
        dist.broadcast_object_list(shared, src=0)
        return shared[0]

    def gather_rows(self, part: np.ndarray) -> np.ndarray:
        """Every process's rows back in order: process r holds rows r, r + world, r + 2 world, ..."""
        if not self.enabled:
            return part
        parts: list[np.ndarray] = []
        dist.all_gather_object(parts, part)
        filled = [p for p in parts if len(p)]
        out = np.empty((sum(len(p) for p in parts), *filled[0].shape[1:]), filled[0].dtype) if filled else part
        for r, p in enumerate(parts):
            if len(p):
                out[r :: self.world] = p
        return out


ONE_PROCESS = Parallel()  # what a step or an evaluation in a single process is given
