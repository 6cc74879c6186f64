"""Names that become paths, checked in one place.

A competition name becomes competitions/NAME.toml, data/NAME, runs/NAME and submissions/NAME; a
run name becomes runs/COMP/RUN; an image id read from a CSV becomes a file under the data folder.
None of them may climb out of the folder it is joined to (`../evil`, `/abs/x`) or make a folder
of its own (`a b/c`): each is one plain name, and an image id stays inside its folder once every
symlink on its way is followed. The paths a competition TOML names (train_dir, train_csv, the
sample, ...) are relative to the data folder without `..` (checked when the TOML is loaded) and
stay inside it once links are followed (checked against the data folder read).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from kaggle_flow.errors import ConfigError, DataError, FlowError

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


def climbs_out(value: str) -> bool:
    """Whether a path of a competition TOML could lead out of the data folder as written: an
    absolute path, or a '..' anywhere in it (links are `check_data_paths`' part)."""
    path = PurePosixPath(value)
    return path.is_absolute() or ".." in path.parts


def is_data_folder(value: str) -> bool:
    """Whether a folder of a competition TOML names the data folder itself ("", ".", "a/..")."""
    return os.path.normpath(value or ".") == "."


def check_data_paths(root: Path, paths: Iterable[tuple[str, str]], toml: Path) -> None:
    """Every path a TOML names (`Competition.data_paths`) stays inside the data folder `root` once
    its links are followed; one that leads elsewhere is a ConfigError naming the TOML, key and value."""
    real = root.resolve()
    for key, value in paths:
        target = (root / value).resolve()
        if not target.is_relative_to(real):
            raise ConfigError(f"{toml}: {key} = {json.dumps(value)} leads to {target}, outside the data folder {root} (a link)")


def named_folders(name: str, runs_dirs: list[Path]) -> list[Path]:
    """The run folders a name from the command line means: RUN (or RUN/foldK) under each of
    `runs_dirs` that holds it, else the run folder it is a path to. Neither a run folder nor a run's
    name (`../x`, `/abs/x`, `a/b/c`) is refused in one line: a name never climbs out of runs/COMP."""
    if is_run_name(name):
        found = [d / name for d in runs_dirs if (d / name / "config.json").is_file()]
        if found:
            return found
    if (Path(name) / "config.json").is_file():
        return [Path(name)]
    check_run_name(name)
    return []
