"""`flow` command line: thin Typer commands over the library."""

from kaggle_flow.cli import (  # noqa: F401  (register commands)
    blend_cmds,
    data_cmds,
    eda_cmds,
    model_cmds,
    review_cmds,
    submit_cmds,
    train_cmds,
    weights_cmds,
)
from kaggle_flow.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
