"""The plain reference a multi-label baseline is compared with: what a competitor writes in a notebook.

A 4-block BatchNorm CNN in plain paddle (conv 3x3, BN, ReLU, max-pool; 32-64-128-256 channels, global
average pool, a linear head), sigmoid + binary cross entropy, Adam at 3e-3 with cosine decay per step,
random shifts of up to 4 px, batch 64, at the images' own size; trained for a given wall time (the
epochs are fitted to it after timing the first); one global threshold chosen on a 10% hold-out.
Scored by scikit-learn on the tree's solution.csv.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from multilabel_trees import FOLDERS, TRAIN_CSV, TREES, Tree, multi_hot, test_folders

HPA_CHANNELS = ("red", "green", "blue", "yellow")


def sklearn_metric(name: str, truth: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score, fbeta_score

    if name == "mean_f2":
        return float(fbeta_score(truth, pred, beta=2, average="samples", zero_division=0))
    return float(f1_score(truth, pred, average=name.split("_")[0], zero_division=0))


def _load(folders: list[Path], ids: list[str], name: str) -> np.ndarray:
    """float32 [n, C, H, W] in [0, 1]; each image from the first of `folders` that holds it (Planet's two test folders)."""
    if name == "hpa":
        folder = folders[0]
        arrays = [np.stack([np.asarray(Image.open(folder / f"{i}_{c}.png")) for c in HPA_CHANNELS], axis=0) for i in ids]
    else:
        suffix = {"planet": ".jpg", "imet": ".png", "plant2021": ""}[name]
        files = [next((f / f"{i}{suffix}" for f in folders if (f / f"{i}{suffix}").is_file()), folders[0] / f"{i}{suffix}")
                 for i in ids]
        arrays = [np.asarray(Image.open(file).convert("RGB")).transpose(2, 0, 1) for file in files]
    return np.stack(arrays).astype(np.float32) / 255.0


def _net(channels: int, k: int):
    import paddle.nn as nn

    layers, c = [], channels
    for width in (32, 64, 128, 256):
        layers += [nn.Conv2D(c, width, 3, padding=1), nn.BatchNorm2D(width), nn.ReLU(), nn.MaxPool2D(2)]
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Linear(c, k))


def _shift(batch: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    padded = np.pad(batch, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
    h, w = batch.shape[2:]
    out = np.empty_like(batch)
    for i in range(len(batch)):
        y, x = rng.integers(0, 2 * pad + 1, size=2)
        out[i] = padded[i, :, y:y + h, x:x + w]
    return out


def _probs(model, x: np.ndarray) -> np.ndarray:
    import paddle
    import paddle.nn.functional as F

    model.eval()
    with paddle.no_grad():
        out = [F.sigmoid(model(paddle.to_tensor(x[i:i + 256]))).numpy() for i in range(0, len(x), 256)]
    model.train()
    return np.concatenate(out)


def run(folder: Path, name: str, seconds: float, seed: int = 0) -> dict:
    """Train for `seconds` on the tree at `folder`; the test score at the hold-out's threshold and at 0.5."""
    import paddle
    import paddle.nn.functional as F

    tree: Tree = TREES[name]
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    frame = pd.read_csv(folder / TRAIN_CSV[name], dtype=str, keep_default_na=False)
    y = multi_hot(frame.iloc[:, 1], tree).astype(np.float32)
    x = _load([folder / FOLDERS[name][0]], frame.iloc[:, 0].tolist(), name)
    order = rng.permutation(len(x))
    hold, train = order[: len(x) // 10], order[len(x) // 10:]
    model = _net(x.shape[1], len(tree.classes))
    batch, steps_per_epoch = 64, math.ceil(len(train) / 64)

    def epoch(optimizer, schedule) -> None:
        perm = rng.permutation(train)
        for s in range(steps_per_epoch):
            idx = perm[s * batch:(s + 1) * batch]
            loss = F.binary_cross_entropy_with_logits(model(paddle.to_tensor(_shift(x[idx], rng))), paddle.to_tensor(y[idx]))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            schedule.step()

    # the first epoch times the rest: the cosine runs over the epochs that fit the budget
    first = time.perf_counter()
    probe = paddle.optimizer.lr.CosineAnnealingDecay(3e-3, T_max=steps_per_epoch * 100)
    optimizer = paddle.optimizer.Adam(probe, parameters=model.parameters())
    epoch(optimizer, probe)
    per_epoch = time.perf_counter() - first
    epochs = max(1, int((seconds - (time.perf_counter() - start)) / per_epoch))
    schedule = paddle.optimizer.lr.CosineAnnealingDecay(probe.last_lr, T_max=steps_per_epoch * epochs)
    optimizer = paddle.optimizer.Adam(schedule, parameters=model.parameters())
    for _ in range(epochs):
        epoch(optimizer, schedule)
    grid = np.arange(0.05, 0.96, 0.05)
    held = _probs(model, x[hold])
    threshold = float(max(grid, key=lambda t: sklearn_metric(tree.metric, y[hold], held >= t)))
    solution = pd.read_csv(folder / "solution.csv", dtype=str, keep_default_na=False)
    truth = multi_hot(solution[tree.label_column], tree)
    test = _probs(model, _load([folder / f for f in test_folders(name)], solution[tree.id_column].tolist(), name))
    return {"score": sklearn_metric(tree.metric, truth, test >= threshold), "at_half": sklearn_metric(tree.metric, truth, test >= 0.5),
            "threshold": threshold, "epochs": epochs + 1, "seconds": time.perf_counter() - start}
