"""All terminal output: one rich console for results, one for warnings and errors."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")


def info(message: str) -> None:
    out.print(message, markup=False)


def warn(message: str) -> None:
    err.print(f"Warning: {message}", markup=False, style="yellow")


def error(message: str) -> None:
    err.print(f"Error: {message}", markup=False, style="bold red")


def shortlist(items: Iterable[object], limit: int = 5, sep: str = ", ") -> str:
    """'a, b, c and 4 more': the first `limit` items of a long list, for one-line messages."""
    items = [str(i) for i in items]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return sep.join(items[:limit]) + more


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 image', '3 images', '2 extra copies' (`many`: the plural when it is not word + 's')."""
    return f"{count} {word if count == 1 else many or word + 's'}"


SHORT_CELL = 12  # characters: values no longer than this (scores, counts, sizes) are never narrowed
MIN_LONG = 8  # characters: the narrowest a long column (names, descriptions) is made
READABLE = 32  # characters: a long column squeezed below this (and below its text) is drawn compact instead


def _overhead(n_columns: int, compact: bool, edge: bool = True) -> int:
    """Characters a table's rules and padding take besides its cells (rich's HEAVY_HEAD / SIMPLE_HEAD)."""
    return 2 * n_columns - (0 if edge else 2) if compact else 3 * n_columns + 1


def _longest_word(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


def fitted_widths(columns: list[str], cells: list[list[str]], room: int) -> list[int] | None:
    """Column widths for `room` characters of cells; None when every column fits whole.

    Short columns (counts, scores) keep their longest value and let their header wrap at its spaces
    ("fold 0" over two lines); long ones (names, descriptions) share what is left, the longest cut
    first, so a name column stays whole while a description wraps.
    """
    longest = [max([0, *(len(row[i]) for row in cells)]) for i in range(len(columns))]
    natural = [max(len(col), n) for col, n in zip(columns, longest)]
    if sum(natural) <= room:
        return None
    short = [n <= SHORT_CELL for n in longest]
    widths = [max(n, _longest_word(col)) if s else w for col, n, s, w in zip(columns, longest, short, natural)]
    long = [i for i, s in enumerate(short) if not s]
    left = room - sum(w for w, s in zip(widths, short) if s)
    cap = max([0, *(natural[i] for i in long)])
    while cap > MIN_LONG and sum(min(natural[i], cap) for i in long) > left:
        cap -= 1
    for i in long:
        widths[i] = min(natural[i], cap)
    return widths


def _cramped(columns: list[str], cells: list[list[str]], widths: list[int] | None, room: int) -> bool:
    """Whether `widths` overrun `room` or squeeze a long column (a description) below READABLE."""
    if widths is None:
        return False
    longest = [max([len(col), *(len(row[i]) for row in cells)]) for i, col in enumerate(columns)]
    squeezed = any(n > SHORT_CELL and w < min(n, READABLE) for w, n in zip(widths, longest))
    return squeezed or sum(widths) > room


def table(title: str | None, columns: list[str], rows: Iterable[Iterable[object]], *, compact: bool = False) -> None:
    """A table that a narrow terminal never cuts: short values (scores, counts) keep their width,
    long ones (file names, descriptions) and headers wrap, left-aligned, instead of ending in "…".
    `compact`: rules under the header only, as `flow runs` draws it (more room for long names); a
    table that the boxed style would cut or squeeze is drawn with a header rule only, no edges."""
    cells = [[str(v) for v in row] for row in rows]
    room = out.width - _overhead(len(columns), compact)
    widths = fitted_widths(columns, cells, room)
    style: dict[str, Any] = {"box": box.SIMPLE_HEAD, "pad_edge": False, "collapse_padding": True} if compact else {}
    if not compact and _cramped(columns, cells, widths, room):  # no box, no edges: every character for the cells
        style = {"box": box.SIMPLE_HEAD, "pad_edge": False, "collapse_padding": True, "show_edge": False}
        widths = fitted_widths(columns, cells, out.width - _overhead(len(columns), True, edge=False))
    t = Table(**style)
    for i, col in enumerate(columns):
        longest = max([len(col) if i == 0 else 0, *(len(row[i]) for row in cells)])  # other headers may wrap
        short = longest <= SHORT_CELL
        t.add_column(col, justify="right" if short and i > 0 else "left", min_width=longest if short else None,
                     width=widths[i] if widths else None, overflow="fold")
    for row in cells:
        t.add_row(*row)
    if title:
        info(title)  # a line of its own: a table's title would wrap to the table's width
    out.print(t, soft_wrap=False)  # the console's soft wrap lets a table run a column past the width


def counts_table(title: str, counts: pd.DataFrame, names: list[str]) -> None:
    """Images per class (`names`: as tables show them, Workspace.class_names), each count column of
    `counts` (besides `class`) followed by its share."""
    columns = [c for c in counts.columns if c != "class"]
    totals = {c: max(int(counts[c].sum()), 1) for c in columns}
    rows = [
        (name, *[v for c in columns for v in (int(r[c]), f"{r[c] / totals[c]:.1%}")])
        for name, r in zip(names, counts.to_dict("records"))
    ]
    table(title, ["class", *[v for c in columns for v in (c, f"{c} share")]], rows)


def progress_bar(*extra_columns: Any) -> Any:
    """flow's rich progress bar on stderr: description, bar, done/total, time left, `extra_columns`."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, *extra_columns, console=err, transient=True)


def progress(items: Iterable[T], total: int | None, description: str, min_total: int = 500) -> Iterator[T]:
    """Iterate with a rich progress bar when the work is large enough to be worth one."""
    if total is None or total < min_total or os.environ.get("FLOW_NO_PROGRESS"):
        yield from items
        return
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


# --- relaying another process's output (rank 0 of a data-parallel run) --------------------------------


class _Tagged(io.TextIOBase):
    """A console's lines into a file shared with the other console, each marked with its stream."""

    def __init__(self, file: IO[str], tag: str) -> None:
        self.file, self.tag, self.pending = file, tag, ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.file.write(f"{self.tag} {line}\n")
        self.file.flush()
        return len(text)

    def isatty(self) -> bool:
        return False


def relay_to(path: Path) -> None:
    """Send both consoles' lines to `path`, tagged by stream, for another process to print (`Relay`).

    The processes of a data-parallel run write everything else (paddle's messages, tracebacks) to
    their own log; only what flow means the user to read goes through here.
    """
    file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115  (open for the process's life)
    out.file, err.file = _Tagged(file, "1"), _Tagged(file, "2")


class Relay:
    """Prints the lines another process's consoles wrote with `relay_to`, as they come."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.partial = path, 0, b""

    def pump(self) -> None:
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                chunk = file.read()
        except OSError:  # not written yet
            return
        self.offset += len(chunk)
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        for line in lines:
            tag, _, text = line.decode("utf-8", errors="replace").partition(" ")
            stream = err.file if tag == "2" else out.file
            stream.write(text + "\n")
            stream.flush()
