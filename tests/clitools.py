"""Driving `flow` in tests: run a command through Typer's CliRunner, read its one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from typer.testing import CliRunner

from kaggle_flow.cli import app

if TYPE_CHECKING:
    from kaggle_flow.runs import Run

runner = CliRunner()


def flow(*args: str | Path) -> Any:
    """Run `flow ARGS` in the current directory (paths under it are passed relative)."""
    argv = [str(a.relative_to(Path.cwd())) if isinstance(a, Path) and a.is_relative_to(Path.cwd()) else str(a) for a in args]
    return runner.invoke(app, argv)


def ctrl_c_in_second_epoch(monkeypatch: Any) -> Any:
    """The next training is stopped by Ctrl-C as its second epoch starts; returns the real epoch
    function, for the caller to put back (`monkeypatch.setattr(fit, "train_one_epoch", real)`)."""
    from kaggle_flow.engine import fit

    real, calls = fit.train_one_epoch, []

    def second_interrupted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fit, "train_one_epoch", second_interrupted)
    return real


def one_line_error(result: Any) -> str:
    """The single line a failed command printed; fails unless it exited 1 with exactly one line."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def fake_run(
    runs: Path, name: str, *, comp: str = "digits", classes: int = 10, seed: int = 0, score: float = 0.5, **options: Any
) -> Run:
    """A run folder with a randomly initialized smallcnn: enough to predict, no training needed.

    Its config.json is the RunConfig `flow train COMP --model smallcnn --epochs 1` would build
    (`classes` other than the competition's: a run trained for another class list); `options` are
    more RunConfig keys (folds="all", n_folds=2 for the parent of a cross-validation run).
    """
    import paddle

    from kaggle_flow.competition import get_competition
    from kaggle_flow.config import Flags
    from kaggle_flow.engine.configure import build_config
    from kaggle_flow.fileio import write_json
    from kaggle_flow.models import create_model
    from kaggle_flow.runs import Summary, load_run

    path = runs / name
    path.mkdir(parents=True)
    flags = {k: v for k, v in options.items() if k in Flags.model_fields}
    config = build_config(get_competition(comp), {"model": "smallcnn", "epochs": 1, **flags})
    run_id = f"{runs.name}/{name}" if (runs / "config.json").is_file() else name
    names = config.classes[:classes] + [f"c{i}" for i in range(len(config.classes), classes)]
    config = config.model_copy(update={**{k: v for k, v in options.items() if k not in flags}, "run": run_id, "classes": names})
    write_json(path / "config.json", config.model_dump(mode="json"))
    if config.folds != "all":
        paddle.seed(seed)
        paddle.save(create_model("smallcnn", classes, config.channels).state_dict(), str(path / "best.pdparams"))
    write_json(path / "summary.json", Summary(status="finished", metric=config.metric, best_score=score).model_dump())
    return load_run(path)


def fake_cv_run(runs: Path, name: str, *, n_folds: int = 2, comp: str = "digits", score: float = 0.5) -> Run:
    """A cross-validation run of `n_folds` fake folds (each its own random smallcnn)."""
    parent = fake_run(runs, name, comp=comp, score=score, folds="all", n_folds=n_folds)
    for k in range(n_folds):
        fake_run(parent.path, f"fold{k}", comp=comp, seed=10 + k, fold=k)
    return parent
