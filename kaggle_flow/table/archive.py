"""Zip archives as downloads come: checked from their listing before a byte is unpacked.

An entry that would land outside the target (zip slip), a total above `ArchiveLimits.max_size`, a
compression ratio no download has (a zip bomb), an encrypted member, or more than the free space are
one-line errors; so is a member that does not unpack (damaged: a bad CRC, deflate data that does not
inflate), naming the archive and the member. The AppleDouble files a Mac adds (`__MACOSX/`, `._NAME`)
are left out. Older Kaggle downloads hold zips (train.zip, test.zip): `unpack_nested` unpacks them in
place, each checked the same way, NESTED_DEPTH levels down at most (a zip deeper is refused). `outline` writes what `flow init` reads of a download: its CSV and JSON files,
and every other file (images, nested zips' images) as an empty file of its name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from kaggle_flow.errors import DataError
from kaggle_flow.fileio import ensure_free_space, human_size, parse_size

READ_SUFFIXES = (".csv", ".json")  # the files `flow init` reads; the rest it knows by name

DEFAULT_MAX_SIZE = 20 * 10**9  # bytes an archive may unpack to without --max-size
NESTED_DEPTH = 2  # zips inside zips are unpacked this many levels down


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may unpack to; None: no limit (--allow-large)."""

    max_size: int | None = DEFAULT_MAX_SIZE  # bytes unpacked, all members together
    max_ratio: float | None = 200.0  # unpacked / archive bytes: downloads of images are ~1:1, CSVs ~10:1
    member_ratio: float | None = 1000.0  # one member; deflate cannot pass ~1032:1, so zeros or a forged header
    member_floor: int = 10**6  # members smaller than this are not ratio-checked (a small CSV compresses well)


def archive_limits(max_size: str | None = None, allow_large: bool = False) -> ArchiveLimits:
    """The limits of `flow import --max-size SIZE / --allow-large`."""
    if allow_large:
        return ArchiveLimits(max_size=None, max_ratio=None, member_ratio=None)
    return ArchiveLimits() if max_size is None else ArchiveLimits(max_size=parse_size(max_size, "--max-size"))


def is_mac_metadata(name: str) -> bool:
    """Whether a path in a download is a Mac's AppleDouble file (`__MACOSX/...`, `._NAME`): no data."""
    parts = PurePosixPath(name).parts
    return "__MACOSX" in parts or bool(parts) and parts[-1].startswith("._")


def _files(archive: Path, members: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """The members that unpack to files, Mac metadata left out; an encrypted one refused."""
    files = [m for m in members if not m.is_dir() and not is_mac_metadata(m.filename)]
    for member in files:
        if member.flag_bits & 0x1:
            raise DataError(
                f"{archive}: member '{member.filename}' is encrypted (a password-protected zip); "
                "unpack it with its password and pass the folder"
            )
    return files


@contextlib.contextmanager
def reading_member(archive: Path, member: str) -> Iterator[None]:
    """Inside the block, a member that does not unpack is a one-line DataError naming it."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a bad CRC, data that does not inflate, cut short
        raise DataError(f"{archive}: member '{member}' is damaged ({exc}); download it again") from None
    except NotImplementedError as exc:  # a compression method zipfile has no decoder for
        raise DataError(f"{archive}: member '{member}' cannot be unpacked ({exc})") from None
    except RuntimeError as exc:  # encrypted, where the listing did not say so
        raise DataError(f"{archive}: member '{member}' cannot be unpacked ({exc}); unpack it yourself and pass the folder") from None


def too_deep(archive: Path | str, depth: int) -> DataError:
    return DataError(
        f"{archive}: a zip {depth} levels down in the download; flow unpacks zips at most {NESTED_DEPTH} levels "
        "down: unpack it yourself and pass the folder"
    )


def zip_members(archive: Path, target: Path) -> list[zipfile.ZipInfo]:
    """The files of a zip (Mac metadata left out), refusing any entry that would land outside
    `target` (zip slip) and an encrypted one."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: not a zip archive ({exc})") from None
    root = target.resolve()
    for member in members:
        if not (target / member.filename).resolve().is_relative_to(root):
            raise DataError(f"{archive}: entry '{member.filename}' would land outside {target}; refused")
    _refuse_entries_below_files(archive, members)
    return _files(archive, members)


def _refuse_entries_below_files(archive: Path, members: list[zipfile.ZipInfo]) -> None:
    """An entry below a file entry (`a` and `a/b.txt`; a symlink entry unpacks as a file) cannot be
    unpacked: refused from the listing, before anything is written."""
    files = {str(PurePosixPath(m.filename)) for m in members if not m.is_dir()}
    for member in members:
        parts = PurePosixPath(member.filename).parts
        for depth in range(1, len(parts) + (1 if member.is_dir() else 0)):
            parent = "/".join(parts[:depth])
            if parent in files:
                raise DataError(
                    f"{archive}: entry '{member.filename}' needs a folder '{parent}' where the archive has a file; refused"
                )


def check_archive(archive: Path, members: list[zipfile.ZipInfo], limits: ArchiveLimits, packed: int | None = None) -> int:
    """The bytes `archive` unpacks to, from its listing; a one-line error when over a limit.
    `packed`: the archive's size when it is not a file of its own (a zip inside a zip)."""
    total = sum(m.file_size for m in members)
    if not members:
        return 0
    largest = max(members, key=lambda m: m.file_size)
    if limits.max_size is not None and total > limits.max_size:
        raise DataError(
            f"{archive}: unpacks to {human_size(total)} (largest member '{largest.filename}', "
            f"{human_size(largest.file_size)}), more than the {human_size(limits.max_size)} limit; "
            "pass --max-size to raise it"
        )
    bomb = "refused as a likely zip bomb (pass --allow-large if it is genuine)"
    packed = max(archive.stat().st_size if packed is None else packed, 1)
    if limits.max_ratio is not None and total / packed > limits.max_ratio:
        raise DataError(
            f"{archive}: unpacks to {human_size(total)} from {human_size(packed)} ({total / packed:.0f}:1, "
            f"largest member '{largest.filename}'), more than {limits.max_ratio:.0f}:1; {bomb}"
        )
    for m in members:
        ratio = m.file_size / max(m.compress_size, 1)
        if limits.member_ratio is not None and m.file_size >= limits.member_floor and ratio > limits.member_ratio:
            raise DataError(
                f"{archive}: member '{m.filename}' unpacks to {human_size(m.file_size)} from "
                f"{human_size(m.compress_size)} ({ratio:.0f}:1), more than {limits.member_ratio:.0f}:1; {bomb}"
            )
    return total


def extract(archive: Path, members: list[zipfile.ZipInfo], target: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in members:
                with reading_member(archive, member.filename):
                    zf.extract(member, target)
    except zipfile.BadZipFile as exc:  # the archive itself, not one member
        raise DataError(f"{archive}: cannot be unpacked: {exc}") from None


def unpack_nested(folder: Path, limits: ArchiveLimits) -> None:
    """Unpack the zips inside a download (older ones ship train.zip and test.zip in the zip), each
    checked as the download was; an archive holding one folder unpacks beside it, else into a folder
    of its name. The zips are removed once unpacked; one still there NESTED_DEPTH levels down is refused."""
    for depth in range(1, NESTED_DEPTH + 2):
        archives = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".zip" and p.is_file()
                          and not is_mac_metadata(p.relative_to(folder).as_posix()))
        if not archives:
            return
        if depth > NESTED_DEPTH:
            raise too_deep(archives[0], depth)
        for archive in archives:
            dest = nested_dest(archive.parent, archive.stem, zip_members(archive, archive.parent))
            members = zip_members(archive, dest)
            ensure_free_space(folder, check_archive(archive, members, limits), f"{archive.name} unpacked")
            extract(archive, members, dest)
            archive.unlink()


def nested_dest(parent: Path, stem: str, members: list[zipfile.ZipInfo]) -> Path:
    """Where a zip inside the download unpacks: beside it when it holds one folder (train.zip ->
    train/), else into a folder of its name."""
    parts = [PurePosixPath(m.filename).parts for m in members]
    one_folder = len({p[0] for p in parts}) == 1 and all(len(p) > 1 for p in parts)
    return parent if one_folder else parent / stem


def _outline_zip(zf: zipfile.ZipFile, archive: Path, dest: Path, limits: ArchiveLimits, depth: int) -> None:
    for member in _files(archive, zf.infolist()):
        path = dest / member.filename
        if not path.resolve().is_relative_to(dest.resolve()):
            raise DataError(f"{archive}: entry '{member.filename}' would land outside {dest}; refused")
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = PurePosixPath(member.filename).suffix.lower()
        if suffix == ".zip":
            if depth >= NESTED_DEPTH:
                raise too_deep(archive / member.filename, depth + 1)
            with reading_member(archive, member.filename), zf.open(member) as raw:
                _outline_nested(raw, archive / member.filename, path.parent, member, limits, depth + 1)
        elif suffix in READ_SUFFIXES:
            with reading_member(archive, member.filename), zf.open(member) as raw, open(path, "wb") as out:
                shutil.copyfileobj(raw, out)
        else:
            path.touch()


def _outline_nested(
    raw: IO[bytes], where: Path, parent: Path, member: zipfile.ZipInfo, limits: ArchiveLimits, depth: int
) -> None:
    try:
        inner = zipfile.ZipFile(raw)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{where}: not a readable zip archive ({exc})") from None
    with inner:
        members = _files(where, inner.infolist())
        check_archive(where, members, limits, packed=member.compress_size)
        dest = nested_dest(parent, PurePosixPath(member.filename).stem, members)
        _outline_zip(inner, where, dest, limits, depth)


def outline(source: Path, dest: Path, limits: ArchiveLimits) -> None:
    """What `flow init` reads of a download (a zip, or a folder holding zips), written under `dest`:
    the CSV and JSON files, every other file empty; zips inside unpacked the same way."""
    if source.is_file():
        members = zip_members(source, dest)
        check_archive(source, members, limits)
        with zipfile.ZipFile(source) as zf:
            _outline_zip(zf, source, dest, limits, 0)
        return
    for folder, dirs, files in os.walk(source):  # does not descend into linked folders
        dirs[:] = [d for d in dirs if not is_mac_metadata(d)]
        here = dest / Path(folder).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in files:
            path = Path(folder, name)
            if path.is_symlink() or is_mac_metadata(name):
                continue
            if path.suffix.lower() == ".zip":
                member = zipfile.ZipInfo(name)
                member.compress_size = path.stat().st_size
                with open(path, "rb") as raw:
                    _outline_nested(raw, path, here, member, limits, 1)
            elif path.suffix.lower() in READ_SUFFIXES:
                shutil.copyfile(path, here / name)
            else:
                (here / name).touch()
