"""Every command has help with an example, is in the README, and `flow --help` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from clitools import flow
from kaggle_flow.cli import app

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
README = (Path(__file__).parent.parent / "README.md").read_text()


def test_all_steps_are_commands() -> None:
    for name in ("eda", "split", "balance", "augment", "train", "submit", "score", "run", "predict", "export"):
        assert name in COMMANDS


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = flow(name, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_in_the_readme(name: str) -> None:
    assert f"flow {name}" in README


@pytest.mark.parametrize("args", [[]] + [[name] for name in COMMANDS], ids=lambda a: " ".join(a) or "flow")
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    code = (
        "import sys; from kaggle_flow.cli import app\n"
        f"try:\n    app({args + ['--help']!r})\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('paddle', 'albumentations', 'sklearn', 'matplotlib', 'pandas', 'cv2') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
