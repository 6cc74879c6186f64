"""The eda pictures: images per class, image sizes, image modes and formats; a multi-label target's labels
per image and co-occurrences (PNG, via kaggle_flow.plotting)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaggle_flow.data.images import load_sample, preview_rgb
from kaggle_flow.plotting import figure, save_png
from kaggle_flow.sample_files import sample_files

if TYPE_CHECKING:
    import pandas as pd


def class_histogram(counts: pd.DataFrame, path: str | os.PathLike[str], title: str = "") -> Path:
    """Bar chart of training images per class (`counts`: class, count, share)."""
    n = len(counts)
    fig, axes = figure(max(5.0, min(0.45 * n + 2, 24.0)), 4.0)
    ax = axes[0, 0]
    bars = ax.bar(range(n), counts["count"], color="#4C72B0")
    names = [str(c) for c in counts["class"]]
    crowded = n > 8 or n * max(map(len, names)) > 60  # many classes, or long names (a label map's)
    ax.set_xticks(range(n), names, rotation=45 if crowded else 0, ha="right" if crowded else "center")
    ax.set_ylabel("training images")
    ax.set_title(f"{title}: images per class" if title else "Images per class")
    if n <= 30:
        ax.bar_label(bars, labels=[str(int(c)) for c in counts["count"]], fontsize=8)
    return save_png(fig, path)


def sizes(images: pd.DataFrame, path: str | os.PathLike[str], bins: int = 40) -> Path:
    """Histograms of width, height and aspect ratio (width / height) of the readable images."""
    fig, axes = figure(13.0, 3.8, cols=3)
    height = images["height"].where(images["height"] > 0)
    aspect = (images["width"] / height).dropna()
    columns = [("width", images["width"]), ("height", images["height"]), ("aspect (w/h)", aspect)]
    for ax, (name, values) in zip(axes[0], columns):
        if len(values):
            distinct = values.nunique()
            ax.hist(values, bins=min(bins, max(distinct, 1)), color="#55A868")
        ax.set_title(name)
        ax.set_ylabel("images")
    return save_png(fig, path)


def _bars(ax: Any, counts: Mapping[str, int], title: str) -> None:
    names, values = list(counts), list(counts.values())
    bars = ax.bar(range(len(names)), values, color="#C44E52")
    ax.set_xticks(range(len(names)), names)
    ax.bar_label(bars, labels=[str(v) for v in values], fontsize=8)
    ax.set_title(title)
    ax.set_ylabel("images")


def modes(mode_counts: Mapping[str, int], format_counts: Mapping[str, int], path: str | os.PathLike[str]) -> Path:
    """Bars of image modes (RGB, L, CMYK...) and file formats (JPEG, PNG...)."""
    fig, axes = figure(10.0, 3.8, cols=2)
    left, right = axes[0]
    _bars(left, mode_counts, "mode")
    _bars(right, format_counts, "format")
    return save_png(fig, path)


def _thumbnail(path: str, side: int = 96) -> Any:
    """The image small, as RGB; a sample of channel files: its first three channels."""
    from PIL import Image  # pixels: only the pairs shown are decoded

    files = sample_files(path)
    if len(files) > 1:
        return preview_rgb(load_sample(path, side, len(files)))
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        return image


def near_twins(pairs: pd.DataFrame, paths: Mapping[str, str], path: str | os.PathLike[str], near: int, show: int = 8) -> Path:
    """The closest pairs that are not byte-identical copies, side by side with distance, split and label
    (`pairs`: explore.twins.pair_table, closest first; `paths`: id -> file)."""
    shown = pairs[~pairs["exact"]].head(show)
    rows = max(len(shown), 1)
    fig, axes = figure(4.6, 2.0 * rows + 0.4, rows=rows, cols=2)
    for ax in axes.flat:
        ax.set_axis_off()
    if shown.empty:
        axes[0, 0].text(0.0, 0.5, f"no near twins within {near} bits (byte-identical copies aside)")
    for k, pair in enumerate(shown.itertuples(index=False)):
        for ax, image_id, split, label in ((axes[k, 0], pair.a, pair.split_a, pair.label_a), (axes[k, 1], pair.b, pair.split_b, pair.label_b)):
            ax.imshow(_thumbnail(paths[image_id]), interpolation="nearest")
            ax.set_title(f"{image_id}\n{split}" + (f", label {label}" if label else ""), fontsize=7)
        axes[k, 0].text(1.05, 0.5, f"{pair.distance}", transform=axes[k, 0].transAxes, ha="center", fontsize=9)
    fig.suptitle(f"Closest near twins (differing bits of 64, at most {near})", fontsize=9)
    return save_png(fig, path)


def labels_per_image(counts: Mapping[str, int], path: str | os.PathLike[str], title: str = "") -> Path:
    """Bars of labelled images by how many classes they hold (a multi-label target: 0, 1, 2, ...)."""
    fig, axes = figure(max(5.0, 0.5 * len(counts) + 2), 3.8)
    ax = axes[0, 0]
    _bars(ax, counts, f"{title}: labels per image" if title else "Labels per image")
    ax.set_xlabel("classes an image holds")
    return save_png(fig, path)


def co_occurrence(matrix: Mapping[str, Any], path: str | os.PathLike[str], title: str = "") -> Path:
    """Heatmap of images holding both classes (`matrix`: classes, counts; the diagonal: images per class)."""
    import numpy as np  # the counts as an array for imshow

    names, counts = [str(c) for c in matrix["classes"]], np.asarray(matrix["counts"])
    n = len(names)
    side = max(4.0, min(0.45 * n + 2.5, 24.0))
    fig, axes = figure(side + 1.0, side)
    ax = axes[0, 0]
    shown = ax.imshow(counts, cmap="Blues")
    fig.colorbar(shown, ax=ax, label="images")
    ax.set_xticks(range(n), names, rotation=90 if n > 8 else 0)
    ax.set_yticks(range(n), names)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_title(f"{title}: classes together" if title else "Classes together (images holding both)")
    return save_png(fig, path)
