"""`flow` command line: thin Typer commands over the library."""

from kaggle_flow.cli import data_cmds, eda_cmds, model_cmds, submit_cmds, train_cmds  # noqa: F401  (register commands)
from kaggle_flow.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
