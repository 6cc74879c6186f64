"""Names that become paths, checked in one place.

A competition name becomes competitions/NAME.toml, data/NAME, runs/NAME and submissions/NAME; a
run name becomes runs/COMP/RUN; an image id read from a CSV becomes a file under the data folder.
None of them may climb out of the folder it is joined to (`../evil`, `/abs/x`) or make a folder
of its own (`a b/c`): each is one plain name, and an image id stays inside its folder once every
symlink on its way is followed.
"""

from __future__ import annotations

import re
from pathlib import Path

from kaggle_flow.errors import DataError, FlowError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ALLOWED = "letters, digits, '.', '_' and '-', starting with a letter or digit"
MAX_NAME = 100  # characters: a name is one file-name component on every file system


def check_name(value: str, what: str = "competition name") -> str:
    """`value` when it is one plain name (a file name without a folder), else a one-line error."""
    if len(value) > MAX_NAME or not NAME.fullmatch(value):
        raise FlowError(f"{what} '{value}': use only {ALLOWED} (at most {MAX_NAME} characters)")
    return value


def is_run_name(value: str) -> bool:
    """Whether `value` is a run's name as `--run`/`--resume` take it: RUN, or RUN/foldK for a fold of a
    cross-validation run."""
    parts = value.split("/")
    return len(parts) <= 2 and all(NAME.fullmatch(p) and len(p) <= MAX_NAME for p in parts)


def check_run_name(value: str) -> str:
    """`value` when it is a run's name (see is_run_name), else a one-line error."""
    if not is_run_name(value):
        raise FlowError(f"run name '{value}': a run folder's name (RUN or RUN/foldK) of {ALLOWED}")
    return value


def path_inside(root: Path, image_id: str, where: str) -> Path:
    """The file `image_id` names under `root`, symlinks followed; ids that climb out of it (`..`,
    an absolute path, a link to elsewhere) are refused, naming the file and line in `where`."""
    path = (root / image_id).resolve()
    if not path.is_relative_to(root.resolve()):
        raise DataError(f"{where}: id '{image_id}' points outside the data folder {root}")
    return path
