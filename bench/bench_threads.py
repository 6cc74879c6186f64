"""paddle's CPU threads: training images/s at 1 thread and at the cores flow uses, same model and data.

paddle pins itself to one thread (OMP_NUM_THREADS=1) when the variable is unset; flow sets it to the
cores the process may use less one, left to the data pipeline (kaggle_flow.machine.cpu_threads). Each setting trains in a fresh process
(the variable is read when paddle is imported): `flow train` for 2 epochs, and the images/s of the
training steps of epoch 2 come from the run's summary.json.

    .venv/bin/python bench/bench_threads.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = [  # competition, flags
    ("mnist", ["--model", "smallcnn", "--sizes", "28", "--batch-size", "64", "--preset", "none"]),
    ("digits", ["--model", "resnet18", "--sizes", "32", "--batch-size", "64", "--preset", "none"]),
]

TRAIN = """
import json, sys
from kaggle_flow.cli import app
from kaggle_flow.runs import all_runs
from kaggle_flow.workspace import open_workspace
try:
    app(sys.argv[1:])
except SystemExit as exit:
    if exit.code:
        raise
run = all_runs(open_workspace(sys.argv[2], remember_it=False).runs_dir)[-1]
print(json.dumps(run.summary.timing[-1]))
"""


def images_per_s(comp: str, flags: list[str], threads: int, workdir: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "FLOW_NO_PROGRESS": "1"}
    argv = ["train", comp, "--epochs", "2", "--no-balance", *flags]
    out = subprocess.run([sys.executable, "-c", TRAIN, *argv], cwd=workdir, env=env, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"])


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from kaggle_flow.machine import usable_cores

    cores = usable_cores()
    workdir = Path(tempfile.mkdtemp(prefix="flow-bench-threads-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, {cores} usable by this process; paddle CPU")
    from kaggle_flow.machine import cpu_threads

    print(f"flow's default here: {cpu_threads()} thread(s) (the usable cores less one, unless OMP_NUM_THREADS is set)")
    for comp, flags in CASES:
        one = images_per_s(comp, flags, 1, workdir)
        many = images_per_s(comp, flags, cores, workdir)
        what = f"{comp}: {' '.join(flags[:4])}"
        print(f"{what:<40} 1 thread {one:7.1f} images/s   {cores} threads {many:7.1f} images/s   x{many / one:.2f}")


if __name__ == "__main__":
    main()
