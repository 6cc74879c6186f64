"""CV against the leaderboard: scores typed in by hand, their rank correlation, and cv_vs_lb.png.

A competition without a submission API (AI Studio) gets its leaderboard scores through
`record_score`; a Kaggle competition gets them from Kaggle (submit/kaggle.py). Either way the ledger
holds them, and this module compares them with the CV scores: Spearman's rank correlation (does a
better CV mean a better leaderboard?) once three submissions have both, and a scatter plot with
a point per submission and board, marked with its row in `flow submissions` (points on each other share a label) and its run named in a key. The plot is drawn in the metric's direction: better is
up and to the right, so for log loss the axes run from high to low.

    >>> record_score(ws.submissions_dir, "20250101-120000_r1.csv", 0.912)
    >>> rank_correlation(ledger, "public_score")     # (0.8, 4): rho over four submissions
    >>> plot_cv_vs_lb(ledger, METRICS["logloss"], ws.submissions_dir / PLOT)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from kaggle_flow.errors import DataError, NotFoundError
from kaggle_flow.metrics import Metric
from kaggle_flow.plotting import figure, save_png
from kaggle_flow.submit.ledger import ledger_file, set_leaderboard

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOT = "cv_vs_lb.png"
KEY_LINES = 30  # submissions named in the plot's key; the rest are in `flow submissions`
MIN_FOR_CORRELATION = 3  # fewer points say nothing about a ranking
BY_HAND = "by hand"  # the lb_status of a score typed in with `flow submissions --lb`


def record_score(submissions_dir: Path, file: str, score: str) -> str:
    """Record a public leaderboard score for a submission file; returns the file name it matched."""
    try:
        value = float(score)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"--lb {file} {score}: the score must be a number")
    name = Path(file).name
    if not set_leaderboard(submissions_dir, name, public_score=f"{value:.6f}", lb_status=BY_HAND):
        raise NotFoundError(f"{name}: not in {ledger_file(submissions_dir)} (`flow submissions` lists the files)")
    return name


def _scores(ledger: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows with both a CV score and a `column` score, as floats."""
    both = (ledger["cv_score"] != "") & (ledger[column] != "")
    return pd.DataFrame({"row": [i + 1 for i, hit in enumerate(both) if hit], "run": ledger.loc[both, "run"],
                         "cv": ledger.loc[both, "cv_score"].astype(float), "lb": ledger.loc[both, column].astype(float)})


def rank_correlation(ledger: pd.DataFrame, column: str = "public_score") -> tuple[float, int] | None:
    """Spearman's rho between CV and `column`, and over how many submissions; None below three
    or when either side has a single value (no ranking). Both scores share the metric, so a positive
    rho means the CV ranks submissions as the leaderboard does, whichever way the metric points."""
    points = _scores(ledger, column)
    if len(points) < MIN_FOR_CORRELATION:
        return None
    rho = points["cv"].corr(points["lb"], method="spearman")
    return None if not math.isfinite(rho) else (float(rho), len(points))


def correlation_lines(ledger: pd.DataFrame) -> list[str]:
    """One line per leaderboard (public, private) with enough submissions for a rank correlation."""
    lines = []
    for column, board in (("public_score", "public"), ("private_score", "private")):
        found = rank_correlation(ledger, column)
        if found is not None:
            rho, n = found
            lines.append(f"Rank correlation of CV and {board} leaderboard (Spearman, {n} submissions): {rho:+.2f}")
    return lines


def plot_cv_vs_lb(ledger: pd.DataFrame, metric: Metric, path: Path) -> Path | None:
    """Write the figure of `cv_vs_lb_figure` to `path`; None when there is nothing to plot."""
    fig = cv_vs_lb_figure(ledger, metric)
    return None if fig is None else save_png(fig, path)


def cv_vs_lb_figure(ledger: pd.DataFrame, metric: Metric) -> Figure | None:
    """Public (and private, when known) against CV, each point marked with its row number in `flow
    submissions` (#N, the run named in a key beside the plot; points on each other share one label,
    "#1,#3"), and the line where
    the leaderboard equals the CV; None when no submission has both a CV and a leaderboard score."""
    public, private = _scores(ledger, "public_score"), _scores(ledger, "private_score")
    if public.empty and private.empty:
        return None
    fig, axes = figure(8.5, 4.8, cols=2, widths=[5, 2])
    ax, side = axes[0, 0], axes[0, 1]
    for points, board, marker in ((public, "public", "o"), (private, "private", "s")):
        if not points.empty:
            ax.scatter(points["cv"], points["lb"], marker=marker, label=board)
    both = pd.concat([public, private], ignore_index=True)
    for text, xy in _labels(both):
        ax.annotate(text, xy, fontsize=8, xytext=(4, 3), textcoords="offset points")
    key = {int(row): str(run) for row, run in zip(both["row"], both["run"])}
    _diagonal(ax, both)
    shown = sorted(key.items())[:KEY_LINES]
    more = [f"... {len(key) - KEY_LINES} more: flow submissions"] if len(key) > KEY_LINES else []
    side.axis("off")
    side.text(0, 1, "\n".join([*(f"#{n} {run}" for n, run in shown), *more]), fontsize=7, va="top", family="monospace", transform=side.transAxes)
    if not metric.higher_is_better:  # better is up and to the right
        ax.invert_xaxis()
        ax.invert_yaxis()
    direction = "higher" if metric.higher_is_better else "lower"
    ax.set_xlabel(f"CV {metric.name} ({direction} is better)")
    ax.set_ylabel(f"leaderboard {metric.name}")
    ax.set_title("CV against leaderboard")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


SAME_SPOT = 100  # points closer than 1/100 of the plotted range sit on each other and share one label


def _labels(points: pd.DataFrame) -> list[tuple[str, tuple[float, float]]]:
    """One label per spot, public and private points alike: the rows of the points there, "#1,#3"."""
    spans = [max(float(points[c].max() - points[c].min()), 1e-12) for c in ("cv", "lb")]
    spots: dict[tuple[int, int], list[tuple[int, float, float]]] = {}
    for row in points.itertuples(index=False):
        spot = (round((row.cv - points["cv"].min()) / spans[0] * SAME_SPOT), round((row.lb - points["lb"].min()) / spans[1] * SAME_SPOT))
        spots.setdefault(spot, []).append((int(row.row), float(row.cv), float(row.lb)))
    return [(",".join(f"#{n}" for n in sorted({r for r, _, _ in found})), found[0][1:]) for found in spots.values()]


def _diagonal(ax: Axes, points: pd.DataFrame) -> None:
    """The dashed line leaderboard = CV over the points' range: above it the leaderboard beats the CV."""
    low, high = float(min(points["cv"].min(), points["lb"].min())), float(max(points["cv"].max(), points["lb"].max()))
    ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8, label="leaderboard = CV")

