"""The galleries of `flow review`: images in a grid, each titled, written atomically (kaggle_flow.plotting).

An image that cannot be read (gone, cut short, not an image) leaves its cell blank and is returned
with the reason, for the one warning that lists them.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kaggle_flow.data.images import load_sample, preview_rgb
from kaggle_flow.plotting import figure, save_png

THUMB = 96  # px: the side of each image in a gallery
CAPTION = 32  # characters a caption line holds at 7 pt over one image; longer ones wrap (long ids, class names)


@dataclass(frozen=True)
class Tile:
    """One image of a gallery: its file (None: not in the table any more), its id and title."""

    path: str | None
    id: str
    title: str


def _thumbnail(tile: Tile, channels: int) -> np.ndarray | str:
    """The image at THUMB px as shown (grey, or its first three channels as RGB), or why it could not be read."""
    if tile.path is None:
        return "not in the table"
    try:
        return preview_rgb(load_sample(tile.path, THUMB, channels))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # PIL's errors for no readable image
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def caption(title: str) -> str:
    """The tile's title with every line wrapped to CAPTION characters, so it never runs over its neighbour's."""
    return "\n".join(textwrap.fill(line, CAPTION, break_long_words=True, break_on_hyphens=False) for line in title.splitlines())


def gallery(grid: list[list[Tile]], path: str | os.PathLike[str], *, channels: int, title: str) -> tuple[Path, dict[str, str]]:
    """A PNG of `grid` (one row of tiles per list); the file, and the ids of the images it could not read with why."""
    cols = max(len(row) for row in grid)
    fig, axes = figure(max(1.9 * cols, 6.0), 2.05 * len(grid) + 0.5, rows=len(grid), cols=cols)
    fig.suptitle(title, fontsize=10)
    skipped: dict[str, str] = {}
    for r, row in enumerate(grid):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_axis_off()
            if c >= len(row):
                continue
            image = _thumbnail(row[c], channels)
            if isinstance(image, str):
                skipped[row[c].id] = image
                ax.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=8, color="#999999", transform=ax.transAxes)
            else:
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_title(caption(row[c].title), fontsize=7)
    return save_png(fig, path, dpi=90), skipped


def rows_of(tiles: list[Tile], cols: int) -> list[list[Tile]]:
    """A flat list of tiles as rows of `cols`."""
    return [tiles[i : i + cols] for i in range(0, len(tiles), cols)]
