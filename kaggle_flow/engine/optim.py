"""Registries of the recipe's optimizers, learning-rate schedules and losses, each entry with its builder.

    OPTIMIZERS["adamw"].build(schedule, model.parameters(), weight_decay)
    SCHEDULES["cosine"].build(lr, total_steps=1000, warmup_steps=50)   # stepped once per iteration
    LOSSES["focal"].build(train_labels=labels, num_classes=4, gamma=2.0, target=TARGETS["single"])

Adding an entry is one line in its table: the CLI help, `flow train` validation and the tests
(parametrized over the registries) pick it up. Which losses a competition trains with is its
target's to say (`Target.losses`: ce, weighted, focal for one label an image; bce, focal, asl for
a set of labels, each class a sigmoid of its own).
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
from kaggle_flow.target import Target

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


# --- losses on soft targets: build(train_labels=..., num_classes=K, gamma=g, target=T) -> loss(logits, q) ---


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


def binary_cross_entropy(logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
    """Mean over the batch and the classes of -(q log p + (1 - q) log(1 - p)), p = sigmoid(logit): each class on its own."""
    return F.binary_cross_entropy_with_logits(logits, targets)


def sigmoid_focal_loss(logits: paddle.Tensor, targets: paddle.Tensor, gamma: float) -> paddle.Tensor:
    """Focal loss of each class on its own (Lin et al., 2017, without alpha): mean over batch and classes of
    -(q (1 - p)^gamma log p + (1 - q) p^gamma log(1 - p)); binary cross entropy when gamma = 0."""
    p = F.sigmoid(logits)
    positive = targets * (1.0 - p) ** gamma * F.log_sigmoid(logits)
    negative = (1.0 - targets) * p**gamma * F.log_sigmoid(-logits)
    return -(positive + negative).mean()


ASL_GAMMA_NEG, ASL_GAMMA_POS, ASL_CLIP = 4.0, 1.0, 0.05  # Ridnik et al., 2021: their defaults for multi-label


def asymmetric_loss(logits: paddle.Tensor, targets: paddle.Tensor, gamma_neg: float = ASL_GAMMA_NEG,
                    gamma_pos: float = ASL_GAMMA_POS, clip: float = ASL_CLIP) -> paddle.Tensor:
    """Asymmetric loss (ASL, Ridnik et al., 2021), mean over batch and classes: positives focused by
    (1 - p)^gamma_pos, negatives by p_m^gamma_neg with p_m = max(p - clip, 0), so the many easy
    negatives of a multi-label image (and those under `clip`, possibly mislabelled) weigh little.
    Binary cross entropy when both gammas and the clip are 0."""
    p = F.sigmoid(logits)
    p_m = paddle.clip(p - clip, min=0.0)
    positive = targets * (1.0 - p) ** gamma_pos * F.log_sigmoid(logits)
    negative = (1.0 - targets) * p_m**gamma_neg * paddle.log(paddle.clip(1.0 - p_m, min=1e-8))
    return -(positive + negative).mean()


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse class frequency, scaled so the average image weighs 1: N / (K * n_k)."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=num_classes).astype(np.float64)
    return (len(labels) / (num_classes * np.maximum(counts, 1.0))).astype(np.float32)


def _ce(**_: Any) -> LossFn:
    return soft_cross_entropy


def _weighted(*, train_labels: np.ndarray, num_classes: int, **_: Any) -> LossFn:
    weights = paddle.to_tensor(class_weights(train_labels, num_classes))
    return lambda logits, q: weighted_cross_entropy(logits, q, weights)


def _focal(*, gamma: float, target: Target, **_: Any) -> LossFn:
    if target.activation == "sigmoid":
        return lambda logits, q: sigmoid_focal_loss(logits, q, gamma)
    return lambda logits, q: focal_loss(logits, q, gamma)


def _bce(**_: Any) -> LossFn:
    return binary_cross_entropy


def _asl(**_: Any) -> LossFn:
    return asymmetric_loss


LOSSES: Registry[Entry[Any]] = Registry("loss", [
    Entry("ce", "cross entropy on (smoothed, mixed) soft labels", _ce),
    Entry("weighted", "cross entropy weighted by inverse class frequency", _weighted),
    Entry("focal", "focal loss: cross entropy (binary, each class on its own, multi-label) scaled by (1 - p)^gamma", _focal),
    Entry("bce", "binary cross entropy, each class a sigmoid of its own (multi-label)", _bce),
    Entry("asl", f"asymmetric loss (multi-label): gamma- {ASL_GAMMA_NEG:g}, gamma+ {ASL_GAMMA_POS:g}, clip {ASL_CLIP:g}", _asl),
])

