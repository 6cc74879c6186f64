"""Getting data in: `flow import` (archive or folder -> data/NAME) and `flow init` (folder -> TOML)."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from kaggle_flow.competition import (
    IMAGE_EXTENSIONS,
    Competition,
    competition_files,
    load_file,
)
from kaggle_flow.errors import DataError, FlowError
from kaggle_flow.fileio import read_csv


def _safe_extract(archive: Path, target: Path) -> None:
    """Unzip, refusing any entry that would land outside `target` (zip slip)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            root = target.resolve()
            for member in zf.infolist():
                dest = (target / member.filename).resolve()
                if not dest.is_relative_to(root):
                    raise DataError(f"{archive}: entry '{member.filename}' would land outside {target}; refused")
            zf.extractall(target)
    except zipfile.BadZipFile:
        raise DataError(f"{archive}: not a zip archive") from None


def _find_root(staging: Path, comp: Competition) -> Path:
    """The folder that holds the layout: the staging folder or a single folder inside it."""
    from kaggle_flow.layouts import read_table

    candidates = [staging]
    while True:
        entries = [p for p in candidates[-1].iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if len(entries) == 1 and entries[0].is_dir():
            candidates.append(entries[0])
        else:
            break
    errors = []
    for folder in reversed(candidates):
        try:
            read_table(folder, comp)
            return folder
        except DataError as exc:
            errors.append(str(exc))
    raise DataError(f"the files do not match the '{comp.name}' layout: {errors[0]}")


def import_data(comp: Competition, source: Path, target: Path, *, force: bool = False) -> Path:
    """Copy or unzip `source` into `target`, checking the layout before anything is kept."""
    if not source.exists():
        raise DataError(f"{source}: not found")
    if target.exists() and any(target.iterdir()) and not force:
        raise FlowError(f"{target}: already holds data; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.import.", dir=target.parent))
    try:
        unpacked = staging / "files"
        if source.is_dir():
            shutil.copytree(source, unpacked)
        else:
            unpacked.mkdir()
            _safe_extract(source, unpacked)
        try:
            root = _find_root(unpacked, comp)
        except DataError as exc:  # name the file the user has, not its copy in the staging folder
            raise DataError(str(exc).replace(str(unpacked), str(source))) from None
        if target.exists():
            shutil.rmtree(target)
        root.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    announce(target, comp)
    return target


def announce(root: Path, comp: Competition) -> None:
    """Print what the user should know about the data just imported (layouts.reading_notes)."""
    from kaggle_flow import console
    from kaggle_flow.layouts import read_table, reading_notes

    for note in reading_notes(root, comp, read_table(root, comp)):
        (console.warn if note.warning else console.info)(note.text)


def _images_in(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and _images_in(p))


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join('"' + v.replace('"', '\\"') + '"' for v in values) + "]"


def infer_toml(name: str, source: Path) -> str:
    """TOML text for a competition, guessed from a folder-per-class tree or a labels CSV."""

    if not source.exists():
        raise DataError(f"{source}: not found")
    lines = [f'title = "{name}"']
    if source.is_file() and source.suffix.lower() == ".csv":
        frame = read_csv(source)
        if frame.shape[1] < 2:
            raise DataError(f"{source}: need an id column and a label column (found: {', '.join(map(repr, frame.columns))})")
        id_col, label_col = frame.columns[:2]
        labels = sorted(set(frame[label_col]), key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
        numeric = all(v.isdigit() for v in labels)
        classes = [str(i) for i in range(int(max(labels, key=int)) + 1)] if numeric else labels
        first = frame[id_col].iloc[0] if len(frame) else ""
        image_dir = next(
            (p.name for p in sorted(source.parent.iterdir()) if p.is_dir() and (p / first).is_file()), "train"
        )
        test_dir = next((p.name for p in sorted(source.parent.iterdir()) if p.is_dir() and "test" in p.name.lower()), None)
        lines += [f"classes = {_toml_list(classes)}", "", "[layout]", 'kind = "csv"',
                  f'train_csv = "{source.name}"', f'id_column = "{id_col}"', f'label_column = "{label_col}"',
                  f'label_form = "{"index" if numeric else "name"}"', f'train_dir = "{image_dir}"']
        lines.append(f'test_dir = "{test_dir}"' if test_dir else "")
        lines += ["", "[submission]", f'id_column = "{id_col}"', f'label_column = "{label_col}"',
                  f'label_form = "{"index" if numeric else "name"}"']
        data_dir = source.parent
    elif source.is_dir():
        sub = {p.name.lower(): p.name for p in source.iterdir() if p.is_dir()}
        train = source / sub["train"] if "train" in sub else source
        classes = _class_dirs(train)
        if len(classes) < 2:
            raise DataError(f"{train}: expected one folder of images per class, found {len(classes)}")
        lines += [f"classes = {_toml_list(classes)}", "", "[layout]", 'kind = "folders"',
                  f'train_dir = "{train.relative_to(source).as_posix() or "."}"']
        for key, names in (("valid_dir", ("valid", "val", "validation")), ("test_dir", ("test",))):
            found = next((sub[n] for n in names if n in sub), None)
            if found:
                lines.append(f'{key} = "{found}"')
        data_dir = source
    else:
        raise DataError(f"{source}: give a folder with one sub-folder per class, or a CSV of id,label")
    lines += ["", "[data]", f'how = "the data lives in {data_dir}: flow import {name} {data_dir}"', ""]
    return "\n".join(lines)


def init_competition(name: str, source: Path, folder: Path = Path("competitions")) -> Path:
    """Write competitions/NAME.toml (never over an existing one) and check that it loads."""
    file = folder / f"{name}.toml"
    if file.exists():
        raise FlowError(f"{file}: already exists; edit it or remove it first")
    if name in competition_files():
        raise FlowError(f"'{name}' is a built-in competition; pick another name")
    text = infer_toml(name, source)
    folder.mkdir(parents=True, exist_ok=True)
    from kaggle_flow.fileio import write_text

    write_text(file, text)
    try:
        load_file(file)
    except FlowError:
        file.unlink()
        raise
    return file
