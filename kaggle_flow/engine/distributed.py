"""The launcher of data-parallel training: `flow train --nproc N` checks the flags, starts
paddle.distributed.launch and watches the processes until they end.

    flow train COMP --nproc 2           this process checks the flags, makes the run folder (config.json),
    |                                   the folds and the image caches, then starts and watches:
    +- python -m paddle.distributed.launch --nproc_per_node 2 --log_dir RUN/log
       +- python -m kaggle_flow.engine.worker  rank 0: trains its shard, writes the run folder; its console
       |                                lines go to RUN/log/console.0 and this process prints them
       +- python -m kaggle_flow.engine.worker  rank 1: trains its shard, writes only its log RUN/log/workerlog.1

Every process trains the folder this one made (rank 0 broadcasts its path, so the processes of
other machines find it too: several machines share the working directory). Inside, each
process's main is worker.py, and step.Parallel does the data parallelism (paddle.DataParallel,
the sharded sampler, rank 0 alone writes); this module starts the processes and reports how they
ended:

- a rank that fails: the launcher stops the others (it sends SIGTERM, then SIGKILL after 3 s);
  each process leaves RUN/log/status.R (running, done, failed and why), from which this process
  prints one line: `rank 1 failed: ... (log: RUN/log/workerlog.1)`;
- Ctrl-C, SIGTERM or SIGHUP here: passed to the launcher, which stops the processes; rank 0 records
  the run as interrupted, to be resumed with `--resume` (with as many processes);
- this process killed outright (`kill -9`): the launcher gets SIGTERM from the kernel (a
  parent-death signal, Linux) and stops the processes the same way; each process gets SIGTERM
  too when the launcher itself is killed (worker.py), so nothing trains on as an orphan;
- what outlives the launcher (the DataLoader workers of a process killed by a signal) is killed
  by process group, from the pids in the status files.

On a CPU the processes talk through gloo, on GPUs through NCCL; paddle picks it. gloo gives up on
a peer after 30 s, so the processes always do the same work: validation is sharded too.
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paddle

from kaggle_flow import console
from kaggle_flow.engine.fold_data import build_caches
from kaggle_flow.errors import FlowError, RankFailed, TrainingInterrupted
from kaggle_flow.fileio import write_text
from kaggle_flow.machine import (
    USER_THREADS,
    child_dies_with_this,
    device,
    signals_recorded,
    usable_cores,
)
from kaggle_flow.runs import Run, load_run

if TYPE_CHECKING:
    import pandas as pd

    from kaggle_flow.workspace import Workspace

RELAY = "console.0"  # rank 0's console lines, under the log folder
STATUS = "status.{rank}"  # each process's pid and state, under the log folder (worker.RankStatus writes it)
STOP_GRACE = 60.0  # s the launcher has to stop its processes after Ctrl-C before it is killed


@dataclass(frozen=True)
class Launch:
    """The processes a run trains in: `--nproc`, `--gpus`, `--nnodes`, `--node-rank`, `--master`."""

    nproc: int | None = None  # processes on this machine (None: one, or one per --gpus)
    gpus: str | None = None  # "0,1": the GPUs of this machine to use, one process each
    nnodes: int = 1
    node_rank: int = 0
    master: str | None = None  # HOST:PORT of node 0

    @property
    def given(self) -> bool:
        return self.nproc is not None or self.gpus is not None or self.nnodes != 1

    @property
    def procs(self) -> int:
        """Processes on this machine."""
        if self.nproc is not None:
            return self.nproc
        return len(_gpu_ids(self.gpus)) if self.gpus else 1

    @property
    def world_size(self) -> int:
        return self.procs * self.nnodes

    def config_keys(self) -> dict[str, int]:
        """What the RunConfig records of it."""
        return {"nproc": self.procs, "world_size": self.world_size}


def _gpu_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        ids = []
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise FlowError(f"--gpus takes GPU numbers separated by commas, e.g. 0,1 (got {text!r})")
    return ids


def launch_for(run: Run | None, launch: Launch) -> Launch:
    """The processes of a resumed run: as many as it was trained with (its own count when no flag says).

    The schedule counts steps of the global batch, which the number of processes sets, so a run
    continues only with the number it started with.
    """
    if run is None:
        return launch
    config = run.config
    if not launch.given and config.world_size == config.nproc:
        return replace(launch, nproc=config.nproc) if config.nproc > 1 else launch
    if (launch.procs, launch.world_size) != (config.nproc, config.world_size):
        nodes = config.world_size // config.nproc
        flags = f"--nproc {config.nproc}" + (f" --nnodes {nodes} (with --node-rank and --master)" if nodes > 1 else "")
        raise FlowError(f"{run.path}: trained by {config.world_size} processes; resume it with as many: {flags}")
    return launch


# --- checks, before anything is made ---------------------------------------------------------------


def check(launch: Launch, *, sync_bn: bool = False) -> None:
    """Refuse in one line what cannot run here: more processes than GPUs or cores, a bad --gpus,
    --nnodes without --master, a master port already taken, --sync-bn without GPUs."""
    if launch.nproc is not None and launch.nproc < 1:
        raise FlowError(f"--nproc must be 1 or more (got {launch.nproc})")
    if launch.nnodes < 1 or not 0 <= launch.node_rank < launch.nnodes:
        raise FlowError(f"--node-rank must be 0 to {max(launch.nnodes, 1) - 1} for --nnodes {launch.nnodes} (got {launch.node_rank})")
    if launch.nnodes > 1 and not launch.master:
        raise FlowError(f"--nnodes {launch.nnodes}: every machine needs --master HOST:PORT, the address of node 0")
    gpus = _gpu_count()
    if launch.gpus is not None:
        _check_gpus(launch, gpus)
    elif gpus and launch.procs > gpus:
        raise FlowError(f"--nproc {launch.procs}: this machine has {gpus} GPU{'s' if gpus > 1 else ''}; at most --nproc {gpus}")
    elif not gpus and launch.procs > _cores():
        cores = _cores()
        raise FlowError(f"--nproc {launch.procs}: this machine has {cores} usable CPU cores and no GPU; at most --nproc {cores}")
    if sync_bn and launch.world_size > 1 and not gpus:
        raise FlowError("--sync-bn: paddle's SyncBatchNorm runs on GPUs only (it has no CPU kernel)")
    if launch.master:
        host, port = _master(launch.master)
        if launch.node_rank == 0:
            _check_port(host, port, launch.master)


def _check_gpus(launch: Launch, gpus: int) -> None:
    ids = _gpu_ids(launch.gpus or "")
    if not gpus:
        raise FlowError(f"--gpus {launch.gpus}: paddle sees no GPU here; --nproc N trains in N CPU processes")
    if max(ids) >= gpus:
        raise FlowError(f"--gpus {launch.gpus}: no GPU {max(ids)} (this machine has {gpus}: 0-{gpus - 1})")
    if launch.nproc is not None and launch.nproc != len(ids):
        raise FlowError(f"--nproc {launch.nproc} and --gpus {launch.gpus} disagree: one process per GPU")


def _master(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FlowError(f"--master takes HOST:PORT, e.g. 10.0.0.1:29500 (got {text!r})")
    return host, int(port)


def _check_port(host: str, port: int, text: str) -> None:
    """Node 0 listens on the master port: taken already, the launcher would fail far less clearly."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise FlowError(f"--master {text}: port {port} is already in use on this machine; choose another") from None
            # not an address of this machine, or not resolvable here: node 0 checks its own


def _gpu_count() -> int:
    if device() != "gpu":
        return 0
    return int(paddle.device.cuda.device_count())


def _cores() -> int:
    return usable_cores()


# --- the launching process -----------------------------------------------------------------------------


def launch_training(ws: Workspace, run: Run | None, launch: Launch, rows: pd.DataFrame, *, strict: bool, resume: bool) -> Run:
    """Start paddle.distributed.launch on `run` (None on nodes other than 0), wait, and return the run.

    The image caches are built here first, once, with every core, so the processes start together.
    """
    if run is not None:
        build_caches(run.config, rows, run.cache_dir)
        log_dir = run.path / "log"
    else:
        log_dir = ws.runs_dir / "logs" / f"node{launch.node_rank}-{time.strftime('%Y%m%d-%H%M%S')}"
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in [*log_dir.glob("status.*"), log_dir / RELAY]:  # a resumed run's previous launch
        old.unlink(missing_ok=True)
    place = "GPU" if _gpu_count() else "CPU"
    where = f" on {launch.nnodes} machines (this is node {launch.node_rank})" if launch.nnodes > 1 else ""
    console.info(f"Data parallel: {launch.world_size} {place} processes{where} (paddle.distributed); every process's log in {log_dir}")
    command = _command(ws, run, launch, log_dir, strict=strict, resume=resume)
    watch = _Watch(log_dir)
    code, stopped = _supervise(command, _environment(launch, place), watch, relay=run is not None)
    _tidy(log_dir)
    if stopped is not None:
        raise _interrupted(ws, run)
    if code != 0:
        line, kind = _failure(log_dir, launch, code, watch.ended)
        raise RankFailed(line, disk_full=kind == "disk")
    if run is None:
        return load_run(Path((log_dir / "run").read_text(encoding="utf-8").strip()))
    return load_run(run.path)


def _command(ws: Workspace, run: Run | None, launch: Launch, log_dir: Path, *, strict: bool, resume: bool) -> list[str]:
    """`python -m paddle.distributed.launch ... python -u -m kaggle_flow.engine.worker ...`."""
    command = [sys.executable, "-m", "paddle.distributed.launch", "--job_id", "flow", "--log_dir", str(log_dir),
               "--nproc_per_node", str(launch.procs)]
    if launch.gpus:
        command += ["--devices", launch.gpus]
    elif _gpu_count():
        command += ["--devices", ",".join(str(i) for i in range(launch.procs))]
    if launch.nnodes > 1 or launch.master:
        command += ["--nnodes", str(launch.nnodes), "--rank", str(launch.node_rank), "--master", str(launch.master)]
    worker = [sys.executable, "-u", "-m", "kaggle_flow.engine.worker", "--comp", ws.comp.name, "--data", str(ws.data_dir)]
    worker += ["--run", str(run.path) if run is not None else ""]
    return command + worker + (["--strict"] if strict else []) + (["--resume"] if resume else [])


def _environment(launch: Launch, place: str) -> dict[str, str]:
    """The processes' environment: CPU threads shared out among them, rank 0's console width."""
    env = dict(os.environ)
    if place == "CPU" and not USER_THREADS:
        env["OMP_NUM_THREADS"] = str(max(1, _cores() // launch.procs))
    env["COLUMNS"] = str(console.out.width)
    env.pop("FLOW_RELAY", None)
    return env


class _Watch:
    """The processes, as their status files name them, and when each ended: the first to go without a
    word is what killed the run (a peer that loses it may abort just as silently, later)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir, self.ended, self.checked = log_dir, {}, 0.0

    def check(self, every: float = 0.2) -> None:
        if time.monotonic() - self.checked < every:
            return
        self.checked = time.monotonic()
        for rank, status in _statuses(self.log_dir).items():
            if rank in self.ended:
                continue
            if status.get("state") != "running":
                self.ended[rank] = float(status.get("time", time.time()))
            elif not _alive(int(status.get("pid", 0))):
                self.ended[rank] = time.time()


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, ended but not yet reaped by the launcher, does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return not Path("/proc").is_dir()  # /proc exists but not this pid: gone


def _supervise(command: list[str], env: dict[str, str], watch: _Watch, *, relay: bool) -> tuple[int, int | None]:
    """Run the launcher (its own output into launch.log), print rank 0's console lines, pass signals on.

    Returns the launcher's exit code and the signal that stopped it (None: it ended by itself).
    """
    log_dir = watch.log_dir
    relayed = console.Relay(log_dir / RELAY)
    with open(log_dir / "launch.log", "ab") as out, signals_recorded() as signals:
        try:
            launcher = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                        preexec_fn=child_dies_with_this())
        except OSError as exc:
            raise FlowError(f"cannot start paddle.distributed.launch: {exc}") from None
        passed_at = None
        while launcher.poll() is None:
            if relay:
                relayed.pump()
            if signals.received and passed_at is None:
                launcher.send_signal(signals.to_pass)  # it stops every process (SIGTERM), then exits
                passed_at = time.monotonic()
            elif passed_at is not None and (signals.count > 1 or time.monotonic() - passed_at > STOP_GRACE):
                os.killpg(launcher.pid, signal.SIGKILL)
            watch.check()
            time.sleep(0.1)
        if relay:
            relayed.pump()
    watch.check(every=0)
    _end_leftovers(log_dir)
    return launcher.returncode, signals.received


def _tidy(log_dir: Path) -> None:
    """Drop the launcher's copies of the whole environment: they do not belong in a run folder."""
    for dump in [*log_dir.glob("envlog.*"), *log_dir.glob("backup_env.*"), *log_dir.glob("flow.*.log")]:
        dump.unlink(missing_ok=True)
    launch_log = log_dir / "launch.log"
    if launch_log.is_file():
        lines = launch_log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        write_text(launch_log, "".join(line for line in lines if not line.startswith(("env {", "environ("))))


def _statuses(log_dir: Path) -> dict[int, dict[str, Any]]:
    found = {}
    for file in log_dir.glob("status.*"):
        try:
            found[int(file.suffix[1:])] = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return found


def _end_leftovers(log_dir: Path) -> None:
    """Kill what outlived the launcher: a process it could not stop, or the DataLoader workers of one
    that died by a signal. The launcher starts each process in a session of its own, so its process
    group holds that process and its workers; only members running kaggle_flow.engine.worker are killed."""
    groups = {int(s.get("pid", 0)) for s in _statuses(log_dir).values() if s.get("state") == "running"} - {0}
    for pid in _members(groups):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _members(groups: set[int]) -> list[int]:
    """The live processes of these process groups whose command is kaggle_flow.engine.worker (Linux /proc)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*") if groups else []:
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[2]) in groups and fields[0] not in ("Z", "X") and b"kaggle_flow.engine.worker" in command:
            found.append(int(entry.name))
    return found


def _interrupted(ws: Workspace, run: Run | None) -> FlowError:
    if run is None:
        return TrainingInterrupted("interrupted; node 0 records where the run stands")
    summary = load_run(run.path).summary
    when = f" after epoch {summary.epochs_done} of {summary.epochs}" if summary.status == "interrupted" else ""
    return TrainingInterrupted(f"interrupted{when}; continue with: flow train {ws.comp.name} --resume {run.path.name}")


def _failure(log_dir: Path, launch: Launch, code: int, ended: dict[int, float]) -> tuple[str, str]:
    """The one line that says which process failed first, why, and where its log is; and how it failed.

    A process's own error (flow's, then any other) outranks one that died without a word (killed:
    out of memory, a signal), which outranks the errors of peers that lost it, then the processes
    the launcher stopped; within a kind, the first to end.
    """
    statuses = _statuses(log_dir)
    first = launch.node_rank * launch.procs
    order = {"disk": 0, "flow": 0, "crash": 1, "silent": 2, "peer": 3, "stopped": 4}

    def kind(rank: int) -> str:
        state = statuses.get(rank, {}).get("state")
        return statuses[rank].get("kind", "crash") if state == "failed" else "done" if state == "done" else "silent"

    ranks = [r for r in range(first, first + launch.procs) if kind(r) != "done"]
    if not ranks:
        return f"paddle.distributed.launch stopped with exit code {code} (log: {log_dir / 'launch.log'})", "crash"
    rank = min(ranks, key=lambda r: (order[kind(r)], ended.get(r, math.inf), r))
    if rank not in statuses:
        reason = "it did not start"
    elif kind(rank) == "silent":
        reason = "it stopped without an error (killed by a signal, e.g. out of memory)"
    else:
        reason = statuses[rank].get("reason", "no reason recorded")
    return f"rank {rank} failed: {reason} (log: {log_dir / f'workerlog.{rank - first}'})", kind(rank)
