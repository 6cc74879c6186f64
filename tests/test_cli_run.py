"""`flow run`: the whole flow on the embedded digits, end to end through the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from kaggle_flow.cli import app

runner = CliRunner()


def test_run_digits_end_to_end(workdir: Path) -> None:
    result = runner.invoke(app, ["run", "digits", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    for i, step in enumerate(("eda", "split", "balance", "train", "submit", "score"), start=1):
        assert f"== {i}/6 flow {step} digits" in result.output
    assert "--epochs 2" in result.output  # passed through to train
    subs = [p for p in (workdir / "submissions/digits").glob("*.csv") if p.name != "ledger.csv"]
    assert len(subs) == 1
    frame = pd.read_csv(subs[0])
    assert list(frame.columns) == ["id", "label"] and len(frame) == 297
    folds = pd.read_csv(workdir / "runs/digits/folds.csv")
    assert (folds["fold"] == 0).sum() == 150  # a 10% hold-out
    match = re.search(r"flow run digits: local accuracy (\d\.\d{4}); total wall time [\d.]+ s", result.output)
    assert match, result.output
    ledger = pd.read_csv(workdir / "submissions/digits/ledger.csv", dtype=str, keep_default_na=False)
    assert ledger["epochs"].tolist() == ["2"]
    assert float(ledger["local_score"].iloc[0]) == float(match.group(1)) or abs(
        float(ledger["local_score"].iloc[0]) - float(match.group(1))
    ) < 1e-4


def test_run_stops_at_the_first_failing_step(workdir: Path) -> None:
    result = runner.invoke(app, ["run", "digits", "--val-size", "2"])
    assert result.exit_code == 1
    assert "== 2/6 flow split" in result.output
    assert "Error: --val-size must be between 0 and 1 (got 2.0)" in result.output
    assert "flow train" not in result.output
