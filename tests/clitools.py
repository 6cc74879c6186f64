"""Driving `flow` in tests: run a command through Typer's CliRunner, read its one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from kaggle_flow.cli import app

runner = CliRunner()


def flow(*args: str | Path) -> Any:
    """Run `flow ARGS` in the current directory (paths under it are passed relative)."""
    argv = [str(a.relative_to(Path.cwd())) if isinstance(a, Path) and a.is_relative_to(Path.cwd()) else str(a) for a in args]
    return runner.invoke(app, argv)


def one_line_error(result: Any) -> str:
    """The single line a failed command printed; fails unless it exited 1 with exactly one line."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def fake_run(runs: Path, name: str, *, comp: str = "digits", classes: int = 10, seed: int = 0, score: float = 0.5) -> Path:
    """A run folder with a randomly initialized smallcnn: enough to predict, no training needed."""
    import json

    import paddle

    from kaggle_flow.models import create_model

    run = runs / name
    run.mkdir(parents=True)
    paddle.seed(seed)
    paddle.save(create_model("smallcnn", classes, 1).state_dict(), str(run / "best.pdparams"))
    config = {
        "competition": comp, "classes": [str(i) for i in range(classes)], "num_classes": classes, "model": "smallcnn",
        "image_size": 16, "channels": 1, "mean": [0.3], "std": [0.35], "epochs": 1, "lr": 0.003, "preset": "affine",
    }
    (run / "config.json").write_text(json.dumps(config))
    (run / "summary.json").write_text(json.dumps({"best_score": score, "metric": "accuracy", "status": "done"}))
    return run
