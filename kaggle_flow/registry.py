"""One kind of named entry (models, augmentation presets, optimizers, schedules, losses, metrics).

A Registry is a read-only mapping of name -> frozen entry that carries its builder and a
description. Looking up a name it does not hold is one line listing the valid ones:

    >>> MODELS["nope"]
    NotFoundError: unknown model 'nope' (valid: smallcnn, smallcnn3, resnet-t, ...)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, TypeVar

from kaggle_flow.errors import NotFoundError


class Named(Protocol):
    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=Named)


class Registry(Mapping[str, E]):
    """The entries of one kind, in the order given (the order `flow models` and friends list them)."""

    def __init__(self, kind: str, entries: Iterable[E]) -> None:
        self.kind = kind  # what an entry is, for the error line: "model", "augmentation preset", ...
        self._entries = {e.name: e for e in entries}

    def __getitem__(self, name: str) -> E:
        if name not in self._entries:
            raise NotFoundError(f"unknown {self.kind} '{name}' (valid: {', '.join(self._entries)})")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str, default: E | None = None) -> E | None:  # type: ignore[override]
        return self._entries.get(name, default)
