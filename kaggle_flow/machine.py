"""What this machine lets one process use (CPU cores, affinity and cgroup quota aware, the GPU), and how it is stopped.

Every signal handler flow installs is installed here: SIGTERM and SIGHUP (the terminal closed) as
Ctrl-C (`sigterm_as_interrupt`, called where a command starts and again where one that trains or
predicts has imported paddle, whose import replaces it), all held for a step that must not be cut
in half (`signals_held`), and recorded to be passed on by the process that launches a data-parallel
run (`signals_recorded`). A process flow starts dies with the one that started it, whatever killed
that one, even `kill -9` (Linux's parent-death signal: `child_dies_with_this` for a command it
starts, `die_with_parent` for itself, `forks_die_with_this` for its DataLoader workers).

paddle pins its CPU kernels to one thread when it is imported with OMP_NUM_THREADS unset (and sets
the variable to 1). `use_cpu_threads` gives them the cores this process may use less one, which the
data pipeline keeps busy (paddle's reader thread decodes, augments and batches beside the kernels;
an OpenMP thread that loses its core to it stalls the others at every barrier: on 2 cores, 2 kernel
threads trained at 0.42x and 0.83x the speed of 1, bench/bench_threads.py); a value the user set
(read here, before paddle can overwrite it: kaggle_flow's __init__ imports this module) wins.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

USER_THREADS = os.environ.get("OMP_NUM_THREADS")  # as the user set it, before paddle's import sets 1
PARENT = os.getppid()  # the process that started this one, read before the slow imports
STOPS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))  # handled as Ctrl-C
PR_SET_PDEATHSIG = 1  # prctl(2): the signal the kernel sends when the parent ends
CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")  # "QUOTA PERIOD" or "max PERIOD"
CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def _cgroup_cpus() -> float | None:
    """The CPU quota of this container in cores, or None when it has none."""
    try:
        quota, period = CGROUP_V2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us, period_us = (int(p.read_text()) for p in CGROUP_V1)
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup quota (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def cpu_threads() -> int:
    """The threads paddle's CPU kernels should use: the user's OMP_NUM_THREADS, else the usable cores
    less the one the data pipeline keeps busy (at least 1)."""
    try:
        return max(1, int(USER_THREADS)) if USER_THREADS else max(1, usable_cores() - 1)
    except ValueError:
        return max(1, usable_cores() - 1)


def use_cpu_threads() -> int:
    """Set paddle's CPU kernel threads to `cpu_threads()`; return the count."""
    import paddle

    threads = cpu_threads()
    set_num_threads = getattr(paddle.base.core, "set_num_threads", None)
    if set_num_threads is not None:
        set_num_threads(threads)
    return threads


_terminated = False  # SIGTERM or SIGHUP arrived


def device() -> str:
    """'gpu' when paddle was built with CUDA and a GPU is present, else 'cpu'."""
    import paddle  # heavy: only the commands that train or predict choose a device

    try:
        if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
            return "gpu"
    except Exception:  # a CUDA build on a machine without a driver
        pass
    return "cpu"


def use_device() -> str:
    """Run paddle on the GPU when there is one, else on the CPU with every usable core; which one."""
    import paddle  # heavy: only the commands that train or predict choose a device

    sigterm_as_interrupt()  # paddle replaced flow's handler when it was imported
    place = device()
    paddle.set_device(place)
    if place == "cpu":
        use_cpu_threads()
    return place


def _interrupt(signum: int, frame: object) -> None:
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


def _quiet_unraisable(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    def unraisable(info: Any) -> None:
        if not (_terminated and isinstance(info.exc_value, KeyboardInterrupt)):
            hook(info)

    return unraisable


def sigterm_as_interrupt() -> None:
    """Let SIGTERM (what `kill` and job schedulers send) and SIGHUP (the terminal closed) stop flow as Ctrl-C does.

    Every failure path already cleans up on KeyboardInterrupt: temp files go, an interrupted run
    stays resumable. Call it again once paddle is imported, since paddle installs its own handler
    (a fatal-error dump). Only the main thread may set handlers; elsewhere this does nothing.
    A signal that lands where Python cannot raise (a finalizer) is remembered: `raise_if_terminated`
    raises it at the next training step, and the "exception ignored" report is left out.
    """
    if threading.current_thread() is threading.main_thread():
        for number in STOPS:
            signal.signal(number, _interrupt)
        if not getattr(sys.unraisablehook, "flow", False):
            sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)
            sys.unraisablehook.flow = True  # type: ignore[attr-defined]


def terminated() -> bool:
    """Whether a SIGTERM (or SIGHUP) came (a data-parallel process stopped by its launcher, not failing itself)."""
    return _terminated


def raise_if_terminated() -> None:
    """KeyboardInterrupt when a SIGTERM or SIGHUP came but was swallowed where it landed."""
    if _terminated:
        raise KeyboardInterrupt


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP held back for the block and raised (KeyboardInterrupt) when it ends.

    For a step that must not be cut in half: a paddle DataLoader interrupted while it starts its
    reader thread leaves a thread that nothing can stop. Only the main thread receives signals;
    elsewhere this does nothing. A signal held while the block raised is kept for
    `raise_if_terminated`.
    """
    global _terminated
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in (signal.SIGINT, *STOPS)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _terminated = _terminated or any(s in held for s in STOPS)
    if held:
        raise KeyboardInterrupt


class RecordedSignals:
    """Ctrl-C, SIGTERM and SIGHUP as they came while `signals_recorded` held them: the first one and how many."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.count = 0

    def record(self, signum: int, frame: Any) -> None:
        self.received = self.received or signum
        self.count += 1

    @property
    def to_pass(self) -> int | None:
        """The signal to pass on: SIGHUP (this process's terminal closed) as SIGTERM, which every launcher handles."""
        return signal.SIGTERM if self.received in STOPS else self.received


@contextlib.contextmanager
def signals_recorded() -> Iterator[RecordedSignals]:
    """Ctrl-C, SIGTERM and SIGHUP recorded, not raised, for the block: a launcher passes them on to its processes.

    Only the main thread receives signals; elsewhere nothing is recorded.
    """
    signals = RecordedSignals()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, signals.record) for s in (signal.SIGINT, *STOPS)}
    try:
        yield signals
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, where there is one (Linux); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Have the kernel send this process `signum` when its parent ends, however it ends (`kill -9`
    included), so that nothing flow started trains on as an orphan; a parent already gone (it ended
    before this process could ask) sends it now. Linux only (prctl PR_SET_PDEATHSIG); elsewhere nothing."""
    _parent_death_signal(_prctl(), signum, PARENT)


def _parent_death_signal(prctl: Callable[..., int] | None, signum: int, parent: int) -> None:
    if prctl is None or prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        return
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)


def child_dies_with_this() -> Callable[[], None]:
    """A `preexec_fn` for subprocess.Popen: the child gets SIGTERM when this process ends (Linux;
    elsewhere it does nothing). SIGTERM, not SIGKILL: the child stops what it runs cleanly.
    libc's prctl is looked up here, not in the child between fork and exec."""
    prctl, this = _prctl(), os.getpid()

    def preexec() -> None:
        _parent_death_signal(prctl, signal.SIGTERM, this)

    return preexec


_forks_die = False  # forks_die_with_this registered its hook (once a process)


def forks_die_with_this() -> None:
    """Every process forked from this one from now on (its DataLoader workers) gets SIGKILL when
    this one ends, even when it dies by SIGKILL or an abort that leaves it no time to stop them
    (Linux; elsewhere nothing). SIGKILL: such a process holds nothing worth saving."""
    global _forks_die
    prctl = _prctl()
    if prctl is not None and hasattr(os, "register_at_fork") and not _forks_die:
        os.register_at_fork(after_in_child=lambda: _parent_death_signal(prctl, signal.SIGKILL, os.getppid()))
        _forks_die = True
