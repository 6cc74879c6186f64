"""Transfer between competitions: lemon started from a zodiac run (`--init-from`) against lemon from scratch.

Both trees are generated from the embedded MNIST digits in the layouts of the real downloads
(bench/course_trees.py), so zodiac's signs and lemon's "photos" share their strokes: what a
network learned on one is a head start on the other. In one run, each a fresh `flow train` process:

    (0) `flow train zodiac --model M --size S --epochs E`: the source run (12 classes)
    (a) `flow train lemon --model M --size S --epochs E --init-from ZODIAC_RUN`: its head replaced (4 classes)
    (b) baseline: the same command without --init-from, from scratch

Printed: the best held-out accuracy of each (lemon's validation fold, zodiac's own valid/) and the
wall time of each whole command, as a small table.

    .venv/bin/python bench/bench_transfer.py [--model resnet-t] [--size 64] [--epochs 10] [--scale 1.0]
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


def train(comp: str, tree: Path, workdir: Path, flags: list[str]) -> tuple[str, float, float]:
    """The run id, best held-out accuracy and wall seconds of one `flow train` command."""
    runs = workdir / "runs" / comp
    before = set(runs.glob("*-f*")) if runs.is_dir() else set()
    env = {**os.environ, "FLOW_NO_PROGRESS": "1"}
    flow = Path(sys.executable).parent / "flow"  # the venv's command, as a user runs it
    start = time.perf_counter()
    done = subprocess.run([str(flow), "train", comp, "--data", str(tree), *flags],
                          cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"flow train {comp} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    run = next(p for p in runs.glob("*-f*") if p not in before)
    return run.name, float(json.loads((run / "summary.json").read_text())["best_score"]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet-t", help="the model of all three runs (default resnet-t)")
    parser.add_argument("--size", type=int, default=64, help="image size in px (default 64)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each run (default 10; 3 for a short run)")
    parser.add_argument("--scale", type=float, default=1.0, help="tree size, as course_trees.py's --scale (default 1.0)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from course_trees import make_lemon, make_zodiac

    root = Path(tempfile.mkdtemp(prefix="flow-bench-transfer-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, paddle CPU; working in {root}")
    zodiac, lemon = make_zodiac(root / "trees" / "zodiac", scale=args.scale), make_lemon(root / "trees" / "lemon", scale=args.scale)
    same = ["--model", args.model, "--size", str(args.size), "--epochs", str(args.epochs)]
    source, source_acc, source_s = train("zodiac", zodiac, root, same)
    _, warm_acc, warm_s = train("lemon", lemon, root, [*same, "--init-from", source])
    _, cold_acc, cold_s = train("lemon", lemon, root, same)
    print(f"\n{args.model}, {args.size} px, {args.epochs} epochs each (trees at scale {args.scale:g})")
    print(f"{'run':<44} {'held-out accuracy':>17} {'wall time':>10}")
    print(f"{'(0) zodiac, the source':<44} {source_acc:>17.4f} {source_s:>9.1f}s")
    print(f"{'(a) lemon --init-from the zodiac run':<44} {warm_acc:>17.4f} {warm_s:>9.1f}s")
    print(f"{'(b) lemon from scratch (baseline)':<44} {cold_acc:>17.4f} {cold_s:>9.1f}s")


if __name__ == "__main__":
    main()
