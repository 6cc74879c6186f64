"""Registries of the recipe's optimizers, learning-rate schedules and losses, each entry with its builder.

    OPTIMIZERS["adamw"].build(schedule, model.parameters(), weight_decay)
    SCHEDULES["cosine"].build(lr, total_steps=1000, warmup_steps=50)   # stepped once per iteration
    LOSSES["focal"].build(train_labels=labels, num_classes=4, gamma=2.0)

Adding an entry is one line in its table: the CLI help, `flow train` validation and the tests
(parametrized over the registries) pick it up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import paddle
import paddle.nn.functional as F

from kaggle_flow.registry import Registry

B = TypeVar("B", bound=Callable[..., Any])

Schedule = paddle.optimizer.lr.LRScheduler
LossFn = Callable[[paddle.Tensor, paddle.Tensor], paddle.Tensor]


@dataclass(frozen=True)
class Entry(Generic[B]):
    """A named option of the training recipe and the function that builds it."""

    name: str
    description: str
    build: B



# --- optimizers: build(schedule, parameters, weight_decay) ---------------------------------------


def _adam(schedule: Schedule, parameters: Any, weight_decay: float) -> paddle.optimizer.Optimizer:
    return paddle.optimizer.Adam(learning_rate=schedule, parameters=parameters, weight_decay=weight_decay or None)


def _adamw(schedule: Schedule, parameters: Any, weight_decay: float) -> paddle.optimizer.Optimizer:
    return paddle.optimizer.AdamW(learning_rate=schedule, parameters=parameters, weight_decay=weight_decay)


def _sgd(schedule: Schedule, parameters: Any, weight_decay: float) -> paddle.optimizer.Optimizer:
    return paddle.optimizer.Momentum(
        learning_rate=schedule, momentum=0.9, parameters=parameters, weight_decay=weight_decay or None
    )


OPTIMIZERS: Registry[Entry[Any]] = Registry("optimizer", [
    Entry("adam", "Adam; weight decay as L2 on the gradients", _adam),
    Entry("adamw", "AdamW: Adam with decoupled weight decay", _adamw),
    Entry("sgd", "SGD with momentum 0.9; weight decay as L2", _sgd),
])


# --- schedules: build(lr, total_steps=T, warmup_steps=W), stepped once per iteration -----------


def _cosine(lr: float, steps: int) -> Schedule:
    return paddle.optimizer.lr.CosineAnnealingDecay(lr, T_max=steps)


def _step(lr: float, steps: int) -> Schedule:
    return paddle.optimizer.lr.StepDecay(lr, step_size=max(1, math.ceil(steps / 3)), gamma=0.1)


def _constant(lr: float, steps: int) -> Schedule:
    return paddle.optimizer.lr.LambdaDecay(lr, lr_lambda=lambda _step: 1.0)


def with_warmup(inner: Callable[[float, int], Schedule]) -> Callable[..., Schedule]:
    """A schedule over the steps after a linear warmup from 0 to lr over the first W steps.

    cosine: lr(s) = lr * s / W for s < W, then lr * (1 + cos(pi * (s - W) / (T - W))) / 2.
    step: lr * 0.1 ** (thirds of T - W passed). constant: lr.
    """

    def build(lr: float, *, total_steps: int, warmup_steps: int) -> Schedule:
        total = max(1, total_steps)
        warmup = min(max(0, warmup_steps), total - 1)
        schedule = inner(lr, max(1, total - warmup))
        if warmup == 0:
            return schedule
        return paddle.optimizer.lr.LinearWarmup(schedule, warmup_steps=warmup, start_lr=0.0, end_lr=lr)

    return build


SCHEDULES: Registry[Entry[Any]] = Registry("schedule", [
    Entry("cosine", "cosine decay to 0 over the run, stepped per iteration", with_warmup(_cosine)),
    Entry("step", "StepDecay: x0.1 after each third of the run", with_warmup(_step)),
    Entry("constant", "the same learning rate throughout", with_warmup(_constant)),
])


# --- losses on soft targets: build(train_labels=..., num_classes=K, gamma=g) -> loss(logits, q) ---


def soft_cross_entropy(logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
    """mean over the batch of -sum_k q_k log p_k (q: soft targets, p: softmax of the logits); paddle's fused op."""
    return F.cross_entropy(logits, targets, soft_label=True)


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


def _ce(**_: Any) -> LossFn:
    return soft_cross_entropy


def _weighted(*, train_labels: np.ndarray, num_classes: int, **_: Any) -> LossFn:
    weights = paddle.to_tensor(class_weights(train_labels, num_classes))
    return lambda logits, q: weighted_cross_entropy(logits, q, weights)


def _focal(*, gamma: float, **_: Any) -> LossFn:
    return lambda logits, q: focal_loss(logits, q, gamma)


LOSSES: Registry[Entry[Any]] = Registry("loss", [
    Entry("ce", "cross entropy on (smoothed, mixed) soft labels", _ce),
    Entry("weighted", "cross entropy weighted by inverse class frequency", _weighted),
    Entry("focal", "focal loss: cross entropy scaled by (1 - p)^gamma", _focal),
])

