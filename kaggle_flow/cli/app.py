"""The Typer app and the one place where library errors become `Error: ...` and exit 1.

Command modules import only typer and the standard library at module level; pandas, paddle,
albumentations, scikit-learn and matplotlib are imported inside the commands, so `flow --help`
stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from kaggle_flow.errors import FlowError


class FlowGroup(TyperGroup):
    """Runs a command; a FlowError, or an OSError the user can fix (fileio.os_error_line), becomes
    one red line on stderr and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        from kaggle_flow.machine import sigterm_as_interrupt

        sigterm_as_interrupt()
        try:
            return super().invoke(ctx)
        except FlowError as exc:
            from kaggle_flow import console

            console.error(str(exc))
            raise typer.Exit(1) from None
        except OSError as exc:  # a read-only folder or a full disk met mid-command: one line too
            from kaggle_flow import console
            from kaggle_flow.fileio import os_error_line

            line = os_error_line(exc)
            if line is None:
                raise
            console.error(line)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=FlowGroup,
    name="flow",
    help="flow: an image-classification competition from raw files to a checked submission.\n\n"
    "Typical day: flow eda lemon -> flow split -> flow balance -> flow augment --preset medium -> "
    "flow train (the competition's recipe; --pretrained --lr 3e-4 fine-tunes ImageNet weights) -> flow submit -> "
    "flow score.  `flow run mnist` does all of it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Options shared by the commands.
CompArg = Annotated[
    Optional[str],
    typer.Argument(help="Competition name (see `flow competitions`); defaults to the last one used here.", show_default=False),
]
DataOpt = Annotated[
    Optional[Path],
    typer.Option("--data", help="Read the competition's files from DIR instead of data/COMP.", metavar="DIR", show_default=False),
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Treat broken images found by `flow eda` as an error instead of leaving them out.")
]
NearOpt = Annotated[
    Optional[int],
    typer.Option(
        "--near", metavar="N", show_default=False,
        help="Near twins: images whose perceptual hashes differ in at most N bits of 64 [default: 4]; 0: the same hash.",
    ),
]
