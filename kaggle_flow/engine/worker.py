"""One process of a data-parallel run, as `flow train --nproc N` has paddle.distributed.launch start it.

    python -m kaggle_flow.engine.worker --comp COMP --data DIR --run RUN_DIR [--strict] [--resume]

Not a command for people: the launcher (distributed.py) builds this line. The process joins the
others, trains the run folder node 0 made (train.train_folder), and reports how it ended in its
log folder (RankStatus: RUN/log/status.R), where the launching process reads it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import traceback
from pathlib import Path

from kaggle_flow import console
from kaggle_flow.engine.distributed import RELAY, STATUS
from kaggle_flow.engine.step import Parallel
from kaggle_flow.engine.train import train_folder
from kaggle_flow.errors import DiskFullError, FlowError
from kaggle_flow.explore.split import ensure_folds
from kaggle_flow.fileio import write_json
from kaggle_flow.machine import (
    die_with_parent,
    forks_die_with_this,
    sigterm_as_interrupt,
    terminated,
)
from kaggle_flow.runs import load_run
from kaggle_flow.table.layouts import labelled
from kaggle_flow.workspace import open_workspace

PEER_ERROR = re.compile(r"gloo|nccl|connection|timeout|socket|broken pipe|peer", re.IGNORECASE)


class RankStatus:
    """RUN/log/status.R: this process's pid and state (running, done, failed: why), for the launching process."""

    def __init__(self, log_dir: Path, rank: int) -> None:
        self.file, self.rank = log_dir / STATUS.format(rank=rank), rank
        self.write("running")

    def write(self, state: str, kind: str = "", reason: str = "") -> None:
        status = {"pid": os.getpid(), "state": state, "time": time.time()}
        if state == "failed":
            status.update(kind=kind, reason=reason)
        write_json(self.file, status)

    def failed(self, exc: BaseException) -> None:
        """Record why this process ends with an error (the traceback goes to its own log).

        Stopped by the launcher (its SIGTERM: a peer failed, or Ctrl-C) is not a failure of its own.
        """
        if terminated() or isinstance(exc, KeyboardInterrupt):
            kind = "stopped"
        elif isinstance(exc, FlowError):
            kind = "disk" if isinstance(exc, DiskFullError) else "flow"
        else:
            traceback.print_exc()
            kind = "peer" if PEER_ERROR.search(f"{type(exc).__name__} {exc}") else "crash"
        text = str(exc) if isinstance(exc, FlowError) else f"{type(exc).__name__}: {exc}"
        reason = (text.strip().splitlines() or [type(exc).__name__])[0][:300]
        print(f"rank {self.rank}: {reason}", file=sys.stderr, flush=True)
        self.write("failed", kind, reason)


def rank_main(comp: str, data: str, run_path: str, *, strict: bool, resume: bool) -> int:
    """One process of a data-parallel run: join the others, train the run folder; 0 when it finished."""
    log_dir = Path(os.environ.get("PADDLE_LOG_DIR", "."))
    parallel = Parallel.launched()
    status = RankStatus(log_dir, parallel.rank)
    sigterm_as_interrupt()  # the launcher stops a process with SIGTERM: it ends like Ctrl-C
    die_with_parent()  # the launcher killed outright: SIGTERM all the same, no orphan training on
    forks_die_with_this()  # and the DataLoader workers go with this process, however it ends
    if parallel.is_main:
        console.relay_to(log_dir / RELAY)
    try:
        _train_rank(comp, data, run_path, strict=strict, resume=resume, log_dir=log_dir, parallel=parallel.join())
    except BaseException as exc:  # every ending is recorded for the launching process, which reports it
        status.failed(exc)
        return 1
    status.write("done")
    return 0


def _train_rank(comp: str, data: str, run_path: str, *, strict: bool, resume: bool, log_dir: Path, parallel: Parallel) -> None:
    run = load_run(parallel.from_main(run_path))  # node 0's run folder, for the other machines' processes
    if not parallel.is_main and not run_path:
        (log_dir / "run").write_text(str(run.path) + "\n", encoding="utf-8")
    ws = open_workspace(comp, Path(data), remember_it=False)
    table = ws.table(strict=strict, quiet=not parallel.is_main)
    train_folder(run, labelled(table), ensure_folds(ws, table), resume=resume, class_names=ws.class_names())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kaggle_flow.engine.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--comp", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--run", default="", help="the run folder (rank 0's is the one every process trains)")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    return rank_main(args.comp, args.data, args.run, strict=args.strict, resume=args.resume)


if __name__ == "__main__":
    sys.exit(main())
