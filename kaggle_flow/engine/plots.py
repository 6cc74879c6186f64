"""The pictures of a training run: curves.png (loss, metric, lr per epoch) and confusion.png (one
label an image) or precision_recall.png (a set of labels an image: each class's precision and recall)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_flow.plotting import figure, save_png


def plot_curves(metrics: pd.DataFrame, metric: str, path: Path) -> Path:
    """Three panels over epochs: train/val loss, val accuracy and metric, learning rate."""
    fig, (axes,) = figure(13, 3.6, cols=3, layout="tight")
    epochs = metrics["epoch"]
    validated = "val_loss" in metrics  # a full refit holds nothing out
    axes[0].plot(epochs, metrics["train_loss"], "o-", label="train")
    if validated:
        axes[0].plot(epochs, metrics["val_loss"], "o-", label="validation")
    axes[0].set_title("loss (train: on smoothed/mixed targets)")
    axes[0].legend()
    if validated:
        axes[1].plot(epochs, metrics["val_acc"], "o-", label="val accuracy")
    if validated and metric != "accuracy":
        axes[1].plot(epochs, metrics["val_metric"], "o-", label=f"val {metric}")
    axes[1].plot(epochs, metrics["train_acc"], "o--", alpha=0.6, label="train accuracy")
    axes[1].set_title(f"validation {metric}" if validated else "training accuracy (nothing held out)")
    axes[1].legend()
    axes[2].plot(epochs, metrics["lr"], "o-")
    axes[2].set_title("learning rate (end of epoch)")
    axes[2].ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    return save_png(fig, path, dpi=90)


def plot_confusion(matrix: np.ndarray, classes: list[str], path: Path, title: str = "validation") -> Path:
    """A confusion matrix with counts, rows = true class, columns = predicted class."""
    k = len(classes)
    side = min(max(4.0, 0.45 * k + 2), 24.0)
    fig, ((ax,),) = figure(side, side, layout="tight")
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=90 if max(len(c) for c in classes) > 3 else 0)
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: {int(np.trace(matrix))}/{int(matrix.sum())} correct")
    if k <= 30:
        top = matrix.max() if matrix.size else 0
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    color = "white" if matrix[i, j] > top / 2 else "black"
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=color, fontsize=8)
    return save_png(fig, path, dpi=90)


def plot_precision_recall(precision: np.ndarray, recall: np.ndarray, positives: np.ndarray, classes: list[str], path: Path,
                          title: str = "validation") -> Path:
    """Each class's precision and recall (at 0.5) side by side, its validation positives under its name:
    what a confusion matrix says of one label an image, for a set of labels."""
    k = len(classes)
    fig, ((ax,),) = figure(min(max(6.0, 0.5 * k + 2), 24.0), 4.2, layout="tight")
    x = np.arange(k)
    ax.bar(x - 0.2, precision, width=0.4, label="precision")
    ax.bar(x + 0.2, recall, width=0.4, label="recall")
    ax.set_xticks(x, [f"{c}\n({int(n)})" for c, n in zip(classes, positives)], rotation=90 if k > 12 else 0)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{title}: each class at 0.5 (validation positives)")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    return save_png(fig, path, dpi=90)


def plot_lr_find(lrs: np.ndarray, smoothed: np.ndarray, index: int, path: Path) -> Path:
    """The learning-rate finder's smoothed loss against the rate (log scale), its suggestion marked."""
    fig, (axes,) = figure(6.4, 4.2)
    ax = axes[0]
    ax.plot(lrs, smoothed)
    ax.plot([lrs[index]], [smoothed[index]], "o", color="tab:red", label=f"suggestion {lrs[index]:.1e} (valley)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.legend()
    return save_png(fig, path, dpi=90)
