"""PNG figures for every picture flow draws: matplotlib's object API on the Agg canvas, saved atomically.

No display and no pyplot state: a `Figure` is made, drawn on and written through a temp file, the
way every other output is written. matplotlib is imported inside `figure`, so a module that draws
costs nothing to import and a command that draws nothing never loads it.

    fig, axes = figure(13.0, 3.6, cols=3)    # axes[row, col]
    axes[0, 0].plot(...)
    save_png(fig, "curves.png", dpi=90)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kaggle_flow.fileio import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def figure(
    width: float, height: float, *, rows: int = 1, cols: int = 1, layout: Literal["constrained", "tight"] = "constrained",
    widths: list[float] | None = None,
) -> tuple[Figure, Any]:
    """A width x height inch figure at 100 dpi on an Agg canvas, and its rows x cols grid of axes
    (`widths`: the columns' relative widths, equal when None)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False, width_ratios=widths)


def save_png(fig: Figure, path: str | os.PathLike[str], *, dpi: float | None = None) -> Path:
    """Write the figure as a PNG through a temp file beside `path` (dpi: the figure's own when None)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)
