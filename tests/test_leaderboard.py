"""Leaderboard scores by hand (`flow submissions --lb`), CV against leaderboard: rank correlation and plot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from clitools import flow, one_line_error

from kaggle_flow.metrics import METRICS
from kaggle_flow.submit.leaderboard import cv_vs_lb_figure, rank_correlation
from kaggle_flow.submit.ledger import COLUMNS, add_entry, read_ledger

SUBS = Path("submissions/digits")


def _ledger(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """A ledger frame of (run, cv, public) rows."""
    return pd.DataFrame([{**dict.fromkeys(COLUMNS, ""), "run": r, "cv_score": cv, "public_score": lb} for r, cv, lb in rows])


def _submissions(workdir: Path, cvs: list[float]) -> list[str]:
    """Ledger rows and CSVs for runs r1, r2, ... with these CV scores."""
    names = []
    for i, cv in enumerate(cvs, 1):
        name = f"20250101-12000{i}_r{i}.csv"
        (workdir / SUBS).mkdir(parents=True, exist_ok=True)
        (workdir / SUBS / name).write_text("id,label\n")
        add_entry(workdir / SUBS, file=Path(name), run=f"r{i}", cv_score=cv)
        names.append(name)
    return names


def test_rank_correlation_needs_three() -> None:
    assert rank_correlation(_ledger([("a", "0.1", "0.2"), ("b", "0.2", "0.3")])) is None
    assert rank_correlation(_ledger([("a", "0.1", "0.2"), ("b", "0.2", "0.3"), ("c", "0.3", "")])) is None
    rho, n = rank_correlation(_ledger([("a", "0.1", "0.2"), ("b", "0.2", "0.3"), ("c", "0.3", "0.1")]))  # type: ignore[misc]
    assert n == 3 and rho == pytest.approx(-0.5)
    assert rank_correlation(_ledger([("a", "0.1", "0.5"), ("b", "0.2", "0.5"), ("c", "0.3", "0.5")])) is None  # no ranking


def test_plot_follows_the_metric_direction() -> None:
    ledger = _ledger([("a", "0.1", "0.2"), ("b", "0.2", "0.3")])
    assert cv_vs_lb_figure(_ledger([("a", "0.1", "")]), METRICS["accuracy"]) is None
    up = cv_vs_lb_figure(ledger, METRICS["accuracy"]).axes[0]  # type: ignore[union-attr]
    assert not up.xaxis_inverted() and not up.yaxis_inverted()
    fig = cv_vs_lb_figure(ledger, METRICS["logloss"])
    down, side = fig.axes  # type: ignore[union-attr]
    assert down.xaxis_inverted() and down.yaxis_inverted()  # lower is better: better is up and to the right
    assert "lower is better" in down.get_xlabel()
    assert [t.get_text() for t in down.texts] == ["#1", "#2"]  # each point marked with its row in `flow submissions`
    assert [t.get_text() for t in side.texts] == ["#1 a\n#2 b"]  # the key beside the plot names the run of each
    (diagonal,) = [line for line in down.lines if line.get_label() == "leaderboard = CV"]
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == [0.1, 0.3]


def test_lb_by_hand_then_correlation_and_plot(workdir: Path) -> None:
    names = _submissions(workdir, [0.90, 0.80, 0.70])
    result = flow("submissions", "digits", "--lb", f"submissions/digits/{names[0]}", "0.91")
    assert result.exit_code == 0, result.output
    assert f"Recorded the public score 0.9100 of {names[0]}" in result.output
    assert "Rank correlation" not in result.output  # one point only
    assert (workdir / SUBS / "cv_vs_lb.png").is_file()
    for name, score in zip(names[1:], ["0.82", "0.75"]):
        assert flow("submissions", "--lb", name, score).exit_code == 0
    result = flow("submissions")
    assert "Rank correlation of CV and public leaderboard (Spearman, 3 submissions): +1.00" in result.output
    assert "CV against leaderboard: submissions/digits/cv_vs_lb.png" in result.output
    ledger = read_ledger(workdir / SUBS)
    assert ledger["public_score"].tolist() == ["0.910000", "0.820000", "0.750000"]
    assert set(ledger["lb_status"]) == {"by hand"}
    assert "0.9100" in result.output and "public" in result.output and "private" in result.output


def test_lb_by_hand_errors(workdir: Path) -> None:
    (name,) = _submissions(workdir, [0.9])
    assert one_line_error(flow("submissions", "digits", "--lb", "nope.csv", "0.5")) == (
        "Error: nope.csv: not in submissions/digits/ledger.csv (`flow submissions` lists the files)"
    )
    assert one_line_error(flow("submissions", "digits", "--lb", name, "high")) == f"Error: --lb {name} high: the score must be a number"
    assert read_ledger(workdir / SUBS)["public_score"].tolist() == [""]


def test_old_ledger_reads_with_blank_leaderboard(workdir: Path) -> None:
    (workdir / SUBS).mkdir(parents=True)
    (workdir / SUBS / "ledger.csv").write_text("time,file,run,cv_score,local_score,state\n2025-01-01 12:00:00,a.csv,r1,0.5,,\n")
    ledger = read_ledger(workdir / SUBS)
    assert ledger[["public_score", "private_score", "lb_status"]].values.tolist() == [["", "", ""]]


def test_points_on_each_other_share_one_label_and_private_points_are_labelled() -> None:
    ledger = _ledger([("a", "0.90", "0.91"), ("b", "0.80", "0.82"), ("c", "0.90", "0.91")])
    ledger["private_score"] = ["0.93", "0.84", ""]
    ax, side = cv_vs_lb_figure(ledger, METRICS["accuracy"]).axes  # type: ignore[union-attr]
    labels = sorted((t.get_text(), t.xy) for t in ax.texts)
    assert labels == [("#1", (0.9, 0.93)), ("#1,#3", (0.9, 0.91)), ("#2", (0.8, 0.82)), ("#2", (0.8, 0.84))]
    assert [t.get_text() for t in side.texts] == ["#1 a\n#2 b\n#3 c"]
