"""How fast a registered model trains on this machine: `flow models --speed` and the automatic recipe."""

from __future__ import annotations

import time
from dataclasses import dataclass

import paddle
import paddle.nn.functional as F

from kaggle_flow.machine import use_device
from kaggle_flow.models import check_size, create_model


@dataclass(frozen=True)
class TrainSpeed:
    """Training throughput of one model on this machine, as `train_speed` measured it."""

    images_per_s: float | None  # None: not timed (the note says why)
    device: str  # "cpu" or "gpu"
    note: str = ""


def train_speed(
    name: str, *, size: int = 64, batch_size: int = 32, num_classes: int = 10, in_channels: int = 3,
    seconds: float = 2.0, max_step_s: float = 10.0,
) -> TrainSpeed:
    """Training images/s of a freshly built model on random data: forward, backward and an Adam step.

    Runs where `flow train` would (`machine.use_device`: the GPU, else the CPU with every usable core).
    One step warms up (oneDNN builds its kernels there), then steps are timed for `seconds`. A model
    whose step, extrapolated from steps of 1 and 4 images, would exceed `max_step_s` is not timed.
    """
    check_size(name, size)
    place = use_device()
    model = create_model(name, num_classes, in_channels, image_size=size)
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())

    def step(batch: int) -> float:
        x, y = paddle.rand([batch, in_channels, size, size]), paddle.randint(0, num_classes, [batch])
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        float(loss)  # waits for the device
        return time.perf_counter() - start

    step(1), step(4)  # the first step of a shape builds its kernels
    one, four = step(1), step(4)  # a step costs a fixed part (Adam's update) plus a part per image
    estimate = one + max(four - one, 0.0) / 3 * (batch_size - 1)
    if estimate > max_step_s:
        return TrainSpeed(None, place, f"not timed: about {estimate:.0f} s a step of {batch_size} here")
    step(batch_size)  # warm-up
    done, elapsed = 0, 0.0
    while elapsed < seconds:
        elapsed, done = elapsed + step(batch_size), done + 1
    return TrainSpeed(done * batch_size / elapsed, place)
