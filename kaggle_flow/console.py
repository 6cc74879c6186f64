"""All terminal output: one rich console for results, one for warnings and errors."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

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


def table(title: str | None, columns: list[str], rows: Iterable[Iterable[object]]) -> None:
    t = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*(str(v) for v in row))
    out.print(t)


def progress_bar(*extra_columns: Any) -> Any:
    """flow's rich progress bar on stderr: description, bar, done/total, time left, `extra_columns`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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
