"""Getting data in: `flow import` (archive or folder -> data/NAME) and `flow init` (folder -> TOML).

An archive is judged by its listing before a byte is unpacked: entries that would land outside the
target (zip slip), a total above `ArchiveLimits.max_size`, a compression ratio no download has (a
zip bomb), or more than the free space are one-line errors. Files are unpacked (or copied) into a
staging folder beside the target and moved into place only once the layout reads; a failure,
KeyboardInterrupt included, removes the staging folder and leaves the old data as it was; the
staging folder of an import killed with -9 is removed by the next import into the same folder.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import replace
from pathlib import Path

from kaggle_flow import console
from kaggle_flow.competition import (
    Competition,
    competition_files,
    load_file,
)
from kaggle_flow.errors import DataError, FlowError
from kaggle_flow.fileio import (
    dead_staging,
    disk_full_as_error,
    disk_full_error,
    ensure_free_space,
    is_disk_full,
    new_staging,
    write_text,
)
from kaggle_flow.names import check_name
from kaggle_flow.table.archive import (
    ArchiveLimits,
    check_archive,
    extract,
    is_mac_metadata,
    outline,
    unpack_nested,
    zip_members,
)
from kaggle_flow.table.init_toml import Inferred, infer_competition
from kaggle_flow.table.layouts import read_table, reading_notes


def _find_root(staging: Path, comp: Competition) -> Path:
    """The folder that holds the layout: the staging folder or a single folder inside it."""
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


def _folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder`, as a copy would write them (symlinks left out)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                info = os.lstat(os.path.join(parent, name))
            except OSError:
                continue  # unreadable: the copy will name it
            if not stat.S_ISLNK(info.st_mode):
                total += info.st_size
    return total


def symlinks_below(folder: Path) -> list[str]:
    """The symbolic links under `folder` (files and folders), relative to it: a folder import
    leaves them out, so no file from outside the folder (a link to /etc/passwd, to /etc) is copied."""
    found = []
    for parent, dirs, files in os.walk(folder):  # does not descend into linked folders
        for name in dirs + files:
            path = Path(parent, name)
            if path.is_symlink():
                found.append(path.relative_to(folder).as_posix())
    return sorted(found)


def _left_out(folder: str, names: list[str]) -> set[str]:
    """copytree's `ignore`: the names in `folder` that are symlinks or a Mac's AppleDouble files."""
    return {name for name in names if os.path.islink(os.path.join(folder, name)) or is_mac_metadata(name)}


def _copy_folder(source: Path, dest: Path, folder: Path, what: str) -> None:
    """shutil.copytree, but a full disk stops it at once (copytree would go on, file after file)."""

    def copy(src: str, dst: str) -> object:
        try:
            return shutil.copy2(src, dst)
        except OSError as exc:
            if is_disk_full(exc):  # a DiskFullError is no OSError: copytree lets it through
                raise disk_full_error(folder, what) from None
            raise

    try:
        shutil.copytree(source, dest, copy_function=copy, ignore=_left_out)
    except shutil.Error as exc:  # unreadable files: copytree lists (source, destination, why) of each
        failures = exc.args[0] if exc.args and isinstance(exc.args[0], list) and exc.args[0] else [(source, "", exc)]
        src, _, why = failures[0]
        raise DataError(f"{source}: {console.plural(len(failures), 'file')} could not be copied, e.g. {src}: {why}") from None


def _refuse_nesting(source: Path, target: Path) -> None:
    """A folder that holds the target would be copied into itself; a source inside the target
    would be deleted by the import that replaces the target."""
    src, dst = source.resolve(), target.resolve()
    if src == dst:
        raise FlowError(f"{source}: is the target folder {target} itself; import from the download, not from its copy")
    if source.is_dir() and dst.is_relative_to(src):
        raise FlowError(
            f"{source}: holds the target folder {target} ({dst}), so it would be copied into itself; "
            "import from a folder outside it, running flow from your working folder"
        )
    if src.is_relative_to(dst):
        raise FlowError(f"{source}: lies inside the target folder {target}, which the import replaces; move it out first")


def _move_into_place(root: Path, target: Path, staging: Path) -> None:
    """Move `root` to `target`; the data already there goes into the staging folder first (deleted
    with it), and comes back if the move fails: never a half-replaced target."""
    old = staging / "replaced"
    had_old = target.exists() or target.is_symlink()
    if had_old:
        target.rename(old)  # a symlink moves as a link: the folder it points to is not touched
    try:
        root.rename(target)
    except BaseException:
        if had_old:
            old.rename(target)
        raise


def reap_staging(data: Path) -> None:
    """Remove the staging folders of imports killed with -9 in `data`. One killed between moving
    the old data aside and the new into place holds the old data: it goes back first."""
    for staging, name in dead_staging(data, "import"):
        old, target = staging / "replaced", data / name
        if (old.exists() or old.is_symlink()) and not (target.exists() or target.is_symlink()):
            try:
                old.rename(target)
            except OSError:
                continue  # the old data stays where it is rather than being deleted
        shutil.rmtree(staging, ignore_errors=True)


def check_target(target: Path, *, force: bool = False) -> None:
    """`target` can take an import: not a file, and empty unless `force` (checked before a download too)."""
    if target.exists() and not target.is_dir():
        raise FlowError(f"{target}: is a file, not a data folder")
    if target.exists() and any(target.iterdir()) and not force:
        raise FlowError(f"{target}: already holds data; pass --force to replace it")


def import_data(
    comp: Competition, source: Path, target: Path, *, force: bool = False, limits: ArchiveLimits = ArchiveLimits()
) -> Path:
    """Copy or unzip `source` into `target`, checking the layout before anything is kept."""
    if not source.exists():
        raise DataError(f"{source}: not found")
    _refuse_nesting(source, target)
    reap_staging(target.parent)
    check_target(target, force=force)
    links = symlinks_below(source) if source.is_dir() else []
    if source.is_dir():
        what, members = f"a copy of {source}", []
        ensure_free_space(target.parent, _folder_bytes(source), what)
    else:
        what, members = f"{source.name} unpacked", zip_members(source, target)
        ensure_free_space(target.parent, check_archive(source, members, limits), what)
    with disk_full_as_error(target.parent, what):
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = new_staging(target.parent, target.name, "import")
    try:
        unpacked = staging / "files"
        with disk_full_as_error(target.parent, what):
            if source.is_dir():
                _copy_folder(source, unpacked, target.parent, what)
            else:
                unpacked.mkdir()
                extract(source, members, unpacked)
        try:
            with disk_full_as_error(target.parent, what):
                unpack_nested(unpacked, limits)
            root = _find_root(unpacked, comp)
        except DataError as exc:  # name the file the user has, not its copy in the staging folder
            raise DataError(str(exc).replace(str(unpacked), str(source))) from None
        _move_into_place(root, target, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if links:
        console.warn(f"{source}: {console.plural(len(links), 'symbolic link')} left out (a folder import copies no link): "
                     f"{console.shortlist(links)}")
    announce(target, comp)
    return target


def announce(root: Path, comp: Competition) -> None:
    """Print what the user should know about the data just imported (layouts.reading_notes)."""
    for note in reading_notes(root, comp, read_table(root, comp)):
        (console.warn if note.warning else console.info)(note.text)


def new_toml(name: str, folder: Path = Path("competitions")) -> Path:
    """The file `flow init NAME` writes, once NAME is a usable name that no competition has yet."""
    check_name(name)
    file = folder / f"{name}.toml"
    if name in competition_files() and not file.exists():
        raise FlowError(f"'{name}' is a built-in competition; pick another name")
    if file.exists():
        raise FlowError(f"{file}: already exists; edit it or remove it first")
    return file


def init_competition(
    name: str, source: Path, folder: Path = Path("competitions"), *, metric: str | None = None,
    limits: ArchiveLimits = ArchiveLimits(), kaggle: str | None = None,
) -> tuple[Path, Inferred]:
    """Write competitions/NAME.toml from a download (folder or zip; never over an existing TOML)
    and check that it loads. `kaggle`: the slug of the competition `source` was downloaded from
    (a temporary file): the TOML records it, and messages name the archive, not where it lies."""
    file = new_toml(name, folder)
    if not source.exists():
        raise DataError(f"{source}: not found")
    shown = Path(source.name) if kaggle else source
    holds_zips = source.is_dir() and any(source.rglob("*.zip"))
    if source.suffix.lower() == ".zip" and source.is_file() or holds_zips:
        with tempfile.TemporaryDirectory(prefix=f"flow-init-{name}.") as tmp:
            try:
                outline(source, Path(tmp), limits)
                inferred = infer_competition(name, Path(tmp), metric, shown=shown, kaggle=kaggle)
            except DataError as exc:  # name the file the user has, not its outline
                raise DataError(str(exc).replace(str(Path(tmp)), str(shown))) from None
        inferred = replace(inferred, warnings=[line.replace(str(Path(tmp)), str(shown)) for line in inferred.warnings])
    else:
        inferred = infer_competition(name, source, metric, kaggle=kaggle)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(file, inferred.text)
    try:
        load_file(file)
    except FlowError:
        file.unlink()
        raise
    return file, inferred
