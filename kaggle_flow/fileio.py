"""Writes that are safe on a full disk: every output that matters goes to a temp file in the same
folder, then rename; free space is checked before a large write; ENOSPC is a one-line error.

A temp file is removed on every failure, KeyboardInterrupt included (the CLI turns SIGTERM into a
KeyboardInterrupt, so `kill` leaves no temp either; only SIGKILL can).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kaggle_flow.errors import DataError, DiskFullError, FlowError

HEADROOM = 1_000_000  # bytes: a checked write also leaves this much for the small files written beside it
_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def human_size(n: float) -> str:
    """Bytes as a user reads them: 950 bytes, 12.3 kB, 124.0 MB, 1.5 GB (powers of 1000, like df -H)."""
    if abs(n) < 1000:
        return f"{int(n)} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if abs(n) < 999.95 or unit == "TB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def parse_size(text: str, flag: str) -> int:
    """'50GB', '500 MB', '2GiB', '1000' -> bytes; a one-line error naming `flag` otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise FlowError(f"{flag} takes a size such as 50GB or 500MB (got {text!r})")
    return int(float(match.group(1)) * _UNITS[unit])


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Free bytes of the filesystem that holds `folder` (or would: its nearest existing parent)."""
    path = Path(os.path.abspath(folder))
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None  # no answer (a vanished mount...): the write itself will tell


def ensure_free_space(folder: str | os.PathLike[str], needed_bytes: int, what: str) -> None:
    """Refuse a write that cannot fit before it starts: a half-written file helps nobody, and a full
    disk makes every later command fail. `needed_bytes` is the estimate; HEADROOM is added to it."""
    needed = int(needed_bytes) + HEADROOM
    free = free_bytes(folder)
    if free is not None and free < needed:
        raise DiskFullError(
            f"not enough free space in {folder} for {what}: {human_size(needed)} needed, "
            f"{human_size(free)} free ({human_size(needed - free)} short)"
        )


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` is (or was raised while handling) an ENOSPC or EDQUOT OSError."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None or isinstance(seen, FlowError):
            return False
        if isinstance(seen, OSError) and seen.errno in _FULL:
            return True
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return False


def disk_full_error(folder: str | os.PathLike[str], what: str) -> DiskFullError:
    """The one line for a write the disk refused part-way (ENOSPC, EDQUOT)."""
    free = free_bytes(folder)
    now = f" ({human_size(free)} free)" if free is not None else ""
    return DiskFullError(f"not enough free space in {folder} for {what}: the disk is full{now}")


@contextlib.contextmanager
def disk_full_as_error(folder: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Inside the block, a full disk is a DiskFullError naming `folder`, never a traceback."""
    try:
        yield
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(folder, what) from None
        raise


def _new_temp(path: Path) -> Path:
    """A new empty file beside `path`, created 0o666 so that the umask applies as to any new file
    (mkstemp's 0600 would make every output private whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds.

    The temp is removed whatever ends the block (a `finally`: KeyboardInterrupt too); a full disk is
    a DiskFullError naming the folder.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        with disk_full_as_error(path.parent, path.name):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _new_temp(path)
            yield tmp
            os.replace(tmp, path)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_csv(path: str | os.PathLike[str], frame: Any, **kwargs: Any) -> Path:
    """Write a pandas DataFrame atomically (index off unless asked)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def read_csv(file: str | os.PathLike[str], columns: Sequence[str] = ()) -> Any:
    """A CSV as strings (no NaN guessing), or a one-line DataError: file missing, unreadable, or
    without one of `columns`."""
    import pandas as pd

    file = Path(file)
    if not file.is_file():
        raise DataError(f"{file}: file not found")
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: not a readable CSV: {str(exc).strip().splitlines()[0]}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(f"{file}: missing column '{missing[0]}' (found: {found})")
    return frame
