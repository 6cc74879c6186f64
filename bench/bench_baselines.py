"""A baseline with no flags: `flow train COMP` on the course competitions as downloaded, timed.

The trees are generated from the embedded MNIST digits in the layouts of the real downloads
(bench/course_trees.py: lemon's CSV with 4 imbalanced classes and broken files, zodiac's
train/valid/test folders, garbage's class folders, PALM's nested folders and xlsx labels). For each:

    (a) `flow train COMP --data TREE`: the automatic recipe, nothing else
    (b) baseline, same run: `--model smallcnn --size 32 --epochs 12`, the quick recipe measured
        before the automatic one existed (it reached 0.79 on zodiac)

Each run is a fresh process, as a user would start it; printed: the best held-out accuracy (the
validation fold, or the download's own validation set) and the wall time of the whole command.

    .venv/bin/python bench/bench_baselines.py [--only lemon,zodiac] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = ["--model", "smallcnn", "--size", "32", "--epochs", "12"]


def train(comp: str, tree: Path, workdir: Path, flags: list[str]) -> tuple[float, float, str]:
    """Best held-out accuracy, wall seconds and the recipe of one `flow train` run."""
    before = set((workdir / "runs" / comp).glob("*-f*")) if (workdir / "runs" / comp).is_dir() else set()
    env = {**os.environ, "FLOW_NO_PROGRESS": "1"}
    start = time.perf_counter()
    flow = Path(sys.executable).parent / "flow"  # the venv's command, as a user runs it
    subprocess.run([str(flow), "train", comp, "--data", str(tree), *flags],
                   cwd=workdir, env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    run = next(p for p in (workdir / "runs" / comp).glob("*-f*") if p not in before)
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    recipe = f"{config['model']} {config['image_size']}px {config['epochs']} epochs bs{config['batch_size']} lr {config['lr']:g}"
    return float(summary["best_score"]), seconds, recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="lemon,zodiac,garbage,palm")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from course_trees import MAKERS

    root = Path(tempfile.mkdtemp(prefix="flow-bench-baselines-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, paddle CPU; working in {root}")
    for comp in args.only.split(","):
        tree = MAKERS[comp](root / "trees" / comp)
        workdir = root / comp
        workdir.mkdir()
        acc, seconds, recipe = train(comp, tree, workdir, [])
        print(f"{comp:<8} (a) no flags   held-out accuracy {acc:.4f}  {seconds:6.1f} s  [{recipe}]", flush=True)
        if not args.no_baseline:
            acc, seconds, recipe = train(comp, tree, workdir, BASELINE)
            print(f"{comp:<8} (b) baseline   held-out accuracy {acc:.4f}  {seconds:6.1f} s  [{recipe}]", flush=True)


if __name__ == "__main__":
    main()
