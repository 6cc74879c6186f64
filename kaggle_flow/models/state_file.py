"""Reading weights and checkpoint files without running code they hold, and checking them against a model.

A .pdparams (or last.pdopt, last.pdstate) is a pickle, and a plain pickle load runs whatever function
the file names: a file from someone else's run folder could run any command. `read_state` unpickles
with a loader that admits only what a state dict holds (numpy arrays, dtypes and scalars, dicts, lists,
tuples, sets, numbers, strings), and refuses anything else in one line naming the file and the object.
It then undoes what paddle.save does to a state dict (paddle 2.x and 3.x), as paddle.load does:
large arrays split into slices joined again, the name table dropped, a tensor saved as (name, array)
read as the array. Arrays come back as numpy; paddle's set_state_dict takes them as they are.

`check_fits` is the one check of a state dict against a model's own: every key, every shape.
"""

from __future__ import annotations

import codecs
import collections
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kaggle_flow.errors import FlowError


class UnreadableState(Exception):
    """The file is no pickle flow can read (empty, cut short, damaged, another format): each caller words it."""


class _OldRngState:
    """paddle's GeneratorState, which the last.pdstate of older runs holds: kept as data, never used."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """What numpy pickles arrays, dtypes and scalars with, under numpy 1.x's and 2.x's module names."""
    reconstruct = np.zeros(0).__reduce__()[0]  # the running numpy's own, whichever module holds it
    scalar = np.float32(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    return allowed


_BUILTINS = {t.__name__: t for t in (dict, list, tuple, set, frozenset, int, float, complex, bool, str, bytes, bytearray)}
ALLOWED: dict[tuple[str, str], Any] = {
    **_numpy_globals(),
    **{(module, name): t for module in ("builtins", "__builtin__") for name, t in _BUILTINS.items()},
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): codecs.encode,  # bytes in a protocol-2 pickle written by Python 3
    ("paddle.base.libpaddle", "GeneratorState"): _OldRngState,
    ("paddle.fluid.libpaddle", "GeneratorState"): _OldRngState,
}


class _StateUnpickler(pickle.Unpickler):
    def __init__(self, stream: Any, file: Path) -> None:
        super().__init__(stream, encoding="latin1")  # as paddle.load: Python 2 pickles of numpy arrays
        self.file = file

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED.get((module, name))
        if found is None:
            raise FlowError(f"{self.file}: refused to load '{module}.{name}' (weights hold only arrays and numbers)")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise FlowError(f"{self.file}: refused to load a persistent object (weights hold only arrays and numbers)")


def read_state(file: str | Path) -> Any:
    """What a weights or checkpoint file holds, its arrays as numpy; FlowError for an object it may not
    hold, UnreadableState for a file that is no readable pickle."""
    path = Path(file)
    try:
        with path.open("rb") as stream:
            saved = _StateUnpickler(stream, path).load()
    except FlowError:
        raise
    except Exception as exc:  # EOFError when empty, UnpicklingError or ValueError when cut short or damaged
        raise UnreadableState(f"{type(exc).__name__}: {exc}") from None
    if isinstance(saved, dict):
        saved = _join_split_arrays(saved)
        saved.pop("StructuredToParameterName@@", None)  # paddle's table of parameter names
    return _untag(saved)


def _join_split_arrays(saved: dict[Any, Any]) -> dict[Any, Any]:
    """paddle.save with protocol 2 or 3 splits an array over 1 GiB into slices (`UnpackBigParamInfor@@`)."""
    info = saved.pop("UnpackBigParamInfor@@", None)  # typos: disable-line
    for key, parts in (info or {}).items():
        saved[key] = np.concatenate([saved.pop(part) for part in parts["slices"]]).reshape(parts["OriginShape"])
    return saved


def _untag(obj: Any) -> Any:
    """A tensor that paddle pickled outside a plain state dict is a (name, array) tuple: the array."""
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], np.ndarray):
        return obj[1]
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _untag(obj[key])
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_untag(item) for item in obj)
    return obj


def check_fits(
    own: Mapping[str, Sequence[int]], state: Mapping[str, Any], file: str | Path, what: str,
    *, may_differ: Callable[[str, np.ndarray], bool] = lambda key, value: False,
) -> None:
    """Every key of `own` (key -> shape) in `state` with its shape, and no other key; else one line naming
    the file and the first mismatch. `may_differ(key, value)`: a shape the caller adapts (a replaced head)."""
    for key, shape in own.items():
        if key not in state:
            raise FlowError(f"{file}: does not fit {what}: first mismatched key {key!r} (missing from the file)")
        got = list(np.shape(state[key]))
        if got != list(shape) and not may_differ(key, state[key]):
            raise FlowError(f"{file}: does not fit {what}: first mismatched key {key!r} {got} vs {list(shape)}")
    extra = [key for key in state if key not in own]
    if extra:
        raise FlowError(f"{file}: does not fit {what}: first mismatched key {extra[0]!r} (not in the model)")
