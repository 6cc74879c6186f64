"""Files in and out, safe on a full disk and a read-only folder.

Atomic writes: every output that matters goes to a temp file in the same folder, then rename; free
space is checked before a large write; ENOSPC is a one-line error. A temp file is removed on every
failure, KeyboardInterrupt included (the CLI turns SIGTERM into a KeyboardInterrupt, so `kill`
leaves no temp either; only SIGKILL can, and `reap_temps` removes those once their writer is gone).
A staging folder (`new_staging`: an import unpacked beside its target) carries its writer the same
way, and a marker file inside it, so that `dead_staging` finds those of a process killed with -9.
`ensure_writable` lets a command that writes fail at its start, in one line, when its folder cannot
be written (a read-only mount); `os_error_line` is the same line for an OSError met later on.
`read_csv` reads a table as strings, header names cleaned of a BOM and surrounding whitespace.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kaggle_flow import console
from kaggle_flow.errors import DataError, DiskFullError, FlowError, NotWritableError

# errno -> what a user is told; only these OSErrors are the user's to fix (others are bugs)
OS_REASONS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
}
_warned: set[tuple[int, int, int]] = set()  # (device, inode, mtime) of the CSVs whose header was warned about
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


def _host_tag() -> str:
    """This machine's name as a temp name carries it: letters, digits and '-' only, at most 24."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:24] or "host"


def _new_temp(path: Path) -> Path:
    """A new empty file beside `path`: `.NAME.HOST.PID.RANDOM.tmp`, so that `reap_temps` can tell
    a temp whose writer died (kill -9) from one still being written. Created 0o666 so that the umask
    applies as to any new file (mkstemp's 0600 would make every output private whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{_host_tag()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(path))


_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")
_OLD_TEMP = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")  # written before temps carried their writer
FOREIGN_TEMP_AGE_S = 24 * 3600  # a temp of another machine (or of unknown writer) untouched this long is dead


def _alive(pid: int) -> bool:
    """Whether a process of this machine has that id (another user's counts: kill says EPERM)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def writer_tag() -> str:
    """This process as a ledger row or a marker names its writer: HOST.PID."""
    return f"{_host_tag()}.{os.getpid()}"


def writer_alive(tag: str) -> bool:
    """Whether the writer `writer_tag` named is still running: a process of this machine that is
    alive; another machine's writer (a shared folder) counts as alive, as its PID means nothing here."""
    host, _, pid = tag.rpartition(".")
    if host != _host_tag() or not pid.isdigit():
        return bool(host) and pid.isdigit()
    return os.name == "nt" or _alive(int(pid))


def _is_stale(temp: Path, now: float) -> bool:
    match = _TEMP.fullmatch(temp.name)
    if match is not None and match["host"] == _host_tag() and os.name != "nt":  # Windows' os.kill would end the process
        return not _alive(int(match["pid"]))
    if match is None and not _OLD_TEMP.fullmatch(temp.name):
        return False  # not a temp of flow's: never touched
    try:
        return now - temp.stat().st_mtime > FOREIGN_TEMP_AGE_S
    except OSError:
        return False


def reap_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temps in `folder` that no process will ever rename: those a kill -9 left behind.

    A temp of this machine is removed when its writer's PID is no longer alive; a temp a running
    process still writes is kept (a reused PID keeps one too long, never too short). A temp made on
    another machine (a folder shared over the network) cannot be asked about: it is removed only
    when untouched for FOREIGN_TEMP_AGE_S, as a write in progress touches its file far more often
    (the host name in the temp's name tells the two apart; comparing it costs nothing).
    Best effort: a folder that is missing or read-only is left as it is. Returns what was removed.
    """
    now, removed = time.time(), []
    try:
        temps = [p for p in Path(folder).iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    except OSError:
        return []
    for temp in temps:
        if _is_stale(temp, now):
            with contextlib.suppress(OSError):
                temp.unlink()
                removed.append(temp)
    return removed


STAGING_MARKER = ".flow-staging"  # inside every staging folder flow makes: no other folder is ever reaped
_STAGING = re.compile(r"\.(?P<name>.+)\.(?P<kind>[a-z]+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}")


def new_staging(folder: Path, name: str, kind: str) -> Path:
    """A new folder beside `folder / name`: `.NAME.KIND.HOST.PID.RANDOM`, with flow's marker inside."""
    for _ in range(100):
        staging = folder / f".{name}.{kind}.{_host_tag()}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        (staging / STAGING_MARKER).touch()
        return staging
    raise FileExistsError(errno.EEXIST, "no free staging folder name", str(folder / name))


def dead_staging(folder: Path, kind: str) -> list[tuple[Path, str]]:
    """The staging folders of `kind` in `folder` whose writer, a process of this machine, is gone
    (kill -9), with the name each was staged for. Only folders of flow's name and marker; another
    machine's are kept (their PID means nothing here). A missing or unreadable folder: none."""
    found = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _STAGING.fullmatch(entry.name)
        if (match is None or match["kind"] != kind or match["host"] != _host_tag() or os.name == "nt"
                or not (entry / STAGING_MARKER).is_file() or entry.is_symlink()):
            continue
        if not _alive(int(match["pid"])):
            found.append((entry, match["name"]))
    return found


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


def replaceable(folder: Path, mark: str) -> bool:
    """Whether flow may put a folder of its own at `folder`: nothing there, an empty folder, or a
    folder flow made (it holds the file `mark`, which flow writes into each folder it makes)."""
    if not folder.exists() and not folder.is_symlink():
        return True
    if folder.is_symlink() or not folder.is_dir():
        return False
    return (folder / mark).is_file() or not any(folder.iterdir())


def replace_folder(staging: Path, folder: Path, mark: str) -> None:
    """Put a folder written beside `folder` (holding `mark`) in its place. What stood there goes only
    when `replaceable`: a folder flow did not make is a FlowError and stays as it was."""
    if not replaceable(folder, mark):
        raise FlowError(f"{folder}: a folder flow did not write (no {mark} file in it); flow does not replace it")
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)


@contextlib.contextmanager
def staged_folder(folder: Path, kind: str, mark: str) -> Iterator[Path]:
    """Yield a new staging folder beside `folder`; put it in `folder`'s place (`replace_folder`) when
    the block succeeds, remove it on every failure. Staging folders of `kind` that a kill -9 left
    beside `folder` (their writer gone) are removed first."""
    for dead, _ in dead_staging(folder.parent, kind):
        shutil.rmtree(dead, ignore_errors=True)
    staging = new_staging(folder.parent, folder.name, kind)
    try:
        yield staging
        (staging / STAGING_MARKER).unlink()
        replace_folder(staging, folder, mark)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


def _shown(path: Path) -> str:
    """A path as a message names it: relative to the working folder when inside it."""
    path, cwd = Path(os.path.abspath(path)), Path.cwd()
    if path == cwd:
        return f"the working folder {cwd}"
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def unwritable_reason(folder: str | os.PathLike[str]) -> str | None:
    """Why new files cannot be made in an existing `folder` ("read-only file system", "permission
    denied"), or None. Asks the OS (statvfs, access) instead of writing a probe file."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return OS_REASONS[errno.EROFS]
    except (OSError, AttributeError):  # no statvfs on Windows: access() alone
        pass
    return None if os.access(folder, os.W_OK | os.X_OK) else OS_REASONS[errno.EACCES]


def ensure_writable(folder: str | os.PathLike[str]) -> Path:
    """Check, before any work, that `folder` can be written (or made: the nearest folder above it
    that exists can be written); a NotWritableError naming `folder` otherwise."""
    folder = Path(folder)
    existing = Path(os.path.abspath(folder))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    reason = unwritable_reason(existing)
    if reason:
        raise NotWritableError(f"{_shown(folder)} is not writable ({reason})")
    return folder


def os_error_line(exc: OSError) -> str | None:
    """The one line for an OSError the user can act on (a read-only folder, a full disk), naming
    the folder; None for any other OSError."""
    reason = OS_REASONS.get(exc.errno or 0)
    if reason is None:
        return None
    if exc.filename is None:
        return reason
    path = Path(os.fsdecode(exc.filename))
    if exc.errno in (errno.EACCES, errno.EPERM) and path.exists() and not os.access(path, os.R_OK):
        return f"{_shown(path)} is not readable ({reason})"
    folder = path if path.is_dir() else path.parent  # a file that could not be made: its folder
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{_shown(folder)}: {reason}"
    return f"{_shown(folder)} is not writable ({reason})"


def _clean_header(file: Path, columns: list[str]) -> list[str]:
    """Header names without a BOM or surrounding whitespace (CR of a CRLF line too); a warning,
    once per file, names what was fixed."""
    clean = [c.replace("\ufeff", "").strip() for c in columns]
    seen: dict[str, str] = {}
    for name, raw in zip(clean, columns):
        if name in seen:
            raise DataError(f"{file}: header names {seen[name]!r} and {raw!r} are the same name once trimmed")
        seen[name] = raw
    with file.open("rb") as f:  # pandas' utf-8-sig has already taken off a leading BOM
        bom = f.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8 or any("\ufeff" in c for c in columns)
    spaced = any(c.replace("\ufeff", "") != name for c, name in zip(columns, clean))
    st = file.stat()
    key = (st.st_dev, st.st_ino, st.st_mtime_ns)  # the same file after `flow import` renames its folder
    if (bom or spaced) and key not in _warned:
        _warned.add(key)
        what = " and ".join(w for w, hit in (("a BOM", bom), ("whitespace around them", spaced)) if hit)
        console.warn(f"{file.name}: header names had {what}; read as {', '.join(map(repr, clean))}")
    return clean


def read_csv(file: str | os.PathLike[str], columns: Sequence[str] = ()) -> Any:
    """A CSV as strings (no NaN guessing), or a one-line DataError: file missing, unreadable, or
    without one of `columns`. Header names are cleaned (see _clean_header): spreadsheet exports
    add a BOM, CRLF and padding a user cannot see; cell values are left as they are."""
    import pandas as pd

    file = Path(file)
    if not file.is_file():
        raise DataError(f"{file}: file not found")
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: not a readable CSV: {str(exc).strip().splitlines()[0]}") from None
    frame.columns = _clean_header(file, [str(c) for c in frame.columns])
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(repr, frame.columns)) or "none"
        raise DataError(f"{file}: missing column {missing[0]!r} (found: {found})")
    return frame
