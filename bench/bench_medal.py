"""Issue 26's medal tricks, measured through the `flow` CLI: a blend, the saturated-metric rule, lr-find.

Everything runs `python -m kaggle_flow.cli` in a temp folder (removed afterwards), on generated trees of
bench/kaggle_trees.py whose test answers are known (solution.csv), and scores the written CSVs here:

1. Blend. The Digit Recognizer tree (real 28x28 MNIST digits, grey: the class is read from the strokes,
   never from a colour or a position), one stratified hold-out (`flow split --val-size`) shared by three
   members that differ in model, size and seed (smallcnn 28 px seed 1, smallcnn 32 px seed 2, resnet-t
   28 px seed 3), then `flow blend` and `flow submit --run ensemble-...`. Prints each member's CV and
   test accuracy, the equal-weight mean's CV, the blend's CV, weights and test accuracy.
2. The saturated metric. The Aerial Cactus tree (two classes, AUC) with a 12-image hold-out: AUC reaches
   1.0 early, and flow keeps a later epoch (a tie within one image's worth goes to the lower val loss).
   The strict rule would keep the FIRST epoch with the highest AUC; a run keeps only best and last, so
   that epoch's weights come from a second run of the same seed stopped there (`--epochs N`). Both use
   `--schedule constant --warmup-epochs 0`: with cosine a shorter run anneals sooner, and a warmup is
   capped below the run's steps, so neither would be the same model at epoch N (the benchmark checks
   that both runs' epoch-N validation loss agree). Test AUC and, beside it, the test log loss of the
   submitted probabilities.
3. lr-find. `flow lr-find` on the blend's tree with member 1's recipe; member 1 (the recipe's lr) and
   a run with the suggestion (same seed, epochs, everything else), each scored on the test digits.

    PYTHONPATH=. .venv/bin/python bench/bench_medal.py [--quick]

About 9 min on 2 busy cores (523 s at a load of 4 to 6; --quick: 260 s). CPU runs repeat with their seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kaggle_trees  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLOW = [sys.executable, "-m", "kaggle_flow.cli"]
DIGITS, CACTUS = "digit_recognizer", "aerial_cactus"


@dataclass(frozen=True)
class Scale:
    """How much the benchmark trains: the full run or --quick."""

    digits: tuple[int, int]  # Digit Recognizer tree: (training, test) digits a class
    epochs: int  # each member of the blend, and the lr-find pair
    saturated_epochs: int  # the Aerial Cactus run
    lr_steps: int  # lr-find's sweep


FULL = Scale(digits=(200, 100), epochs=4, saturated_epochs=12, lr_steps=100)
QUICK = Scale(digits=(60, 30), epochs=2, saturated_epochs=6, lr_steps=40)
VAL_SIZE = 0.2  # the digits' hold-out: 400 of 2,000 (full)
CACTUS_VAL_SIZE = 0.25  # 12 of the 48 cactus images: AUC saturates
# (name, flags) of the blend's members; the first is also lr-find's recipe.
MEMBERS = [
    ("smallcnn 28px s1", ["--model", "smallcnn", "--size", "28", "--seed", "1"]),
    ("smallcnn 32px s2", ["--model", "smallcnn", "--size", "32", "--seed", "2"]),
    ("resnet-t 28px s3", ["--model", "resnet-t", "--size", "28", "--seed", "3"]),
]
DIGIT_FLAGS = ["--batch-size", "64", "--preset", "affine"]  # affine: a mirrored digit is another glyph
CACTUS_FLAGS = ["--model", "smallcnn", "--size", "28", "--batch-size", "8", "--schedule", "constant",
                "--warmup-epochs", "0", "--seed", "0"]


class Flow:
    """`flow` commands in one working folder; each failure stops the benchmark with flow's output."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOW_NO_PROGRESS": "1"}

    def __call__(self, *args: str) -> str:
        done = subprocess.run([*FLOW, *args], cwd=self.work, env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"flow {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout + done.stderr

    def runs(self, comp: str) -> set[str]:
        folder = self.work / "runs" / comp
        return {p.parent.name for p in folder.glob("*/config.json")}  # run folders, not cache/ or eda/

    def train(self, comp: str, *flags: str) -> tuple[str, float]:
        """The new run's id and the command's wall time."""
        before, start = self.runs(comp), time.perf_counter()
        self("train", comp, *flags)
        (run,) = self.runs(comp) - before
        return run, time.perf_counter() - start

    def submit(self, comp: str, run: str) -> pd.DataFrame:
        folder = self.work / "submissions" / comp
        before = set(folder.glob("*.csv")) if folder.is_dir() else set()
        self("submit", comp, "--run", run)
        (csv,) = set(folder.glob("*.csv")) - before - {folder / "ledger.csv"}
        return pd.read_csv(csv)

    def summary(self, comp: str, run: str) -> dict:
        return json.loads((self.work / "runs" / comp / run / "summary.json").read_text())

    def config(self, comp: str, run: str) -> dict:
        return json.loads((self.work / "runs" / comp / run / "config.json").read_text())

    def metrics(self, comp: str, run: str) -> pd.DataFrame:
        return pd.read_csv(self.work / "runs" / comp / run / "metrics.csv")


def prepare(flow: Flow, name: str, val_size: float) -> pd.DataFrame:
    """Generate the tree, `flow init`/`import`/`split` it; its test answers."""
    tree = kaggle_trees.make(name, flow.work / "downloads")
    metric = "auc" if name == CACTUS else "accuracy"
    flow("init", name, "--from", str(tree), "--metric", metric)
    flow("import", name, str(tree))
    flow("split", name, "--val-size", str(val_size))
    return pd.read_csv(flow.work / "data" / name / "solution.csv")


def test_accuracy(submission: pd.DataFrame, solution: pd.DataFrame) -> float:
    truth = solution.set_index("ImageId").loc[submission["ImageId"], "Label"].to_numpy()
    return float(np.mean(submission["Label"].to_numpy() == truth))


def test_auc_logloss(submission: pd.DataFrame, solution: pd.DataFrame) -> tuple[float, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    truth = solution.set_index("id").loc[submission["id"], "has_cactus"].to_numpy()
    p = submission["has_cactus"].to_numpy(dtype=float)
    return float(roc_auc_score(truth, p)), float(log_loss(truth, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]))


def blend(flow: Flow, scale: Scale, solution: pd.DataFrame) -> tuple[list[tuple[str, str, str]], dict]:
    """The members, `flow blend` and the ensemble's submission: table rows, and member 1 for lr-find."""
    rows, members = [], []
    for name, flags in MEMBERS:
        run, wall = flow.train(DIGITS, *flags, *DIGIT_FLAGS, "--epochs", str(scale.epochs))
        cv, test = flow.summary(DIGITS, run)["best_score"], test_accuracy(flow.submit(DIGITS, run), solution)
        members.append({"name": name, "run": run, "cv": cv, "test": test, "wall": wall, "flags": flags})
        print(f"  member {name}: CV {cv:.4f}, test {test:.4f}, trained in {wall:.0f} s ({run})", flush=True)
        rows.append((f"blend member {name}", f"CV {cv:.4f}", f"test {test:.4f}"))
    before = flow.runs(DIGITS)
    out = flow("blend", DIGITS, *[m["run"] for m in members])
    (ensemble,) = flow.runs(DIGITS) - before
    equal = float(re.search(r"equal weights\D*([0-9.]+)", out).group(1))
    weights = flow.config(DIGITS, ensemble)
    cv, test = flow.summary(DIGITS, ensemble), test_accuracy(flow.submit(DIGITS, ensemble), solution)
    by_run = {m["run"]: m["name"] for m in members}
    shown = ", ".join(f"{by_run.get(r, r)} {w:.2f}" for r, w in _weights(weights).items())
    best = max(members, key=lambda m: m["cv"])
    print(f"  equal weights CV {equal:.4f}; blend CV {cv['best_score']:.4f} ({shown}), test {test:.4f}", flush=True)
    rows += [("equal-weight mean (flow blend)", f"CV {equal:.4f}", "-"),
             (f"blend: {shown}", f"CV {cv['best_score']:.4f}", f"test {test:.4f}"),
             (f"blend - best member ({best['name']})", f"CV {cv['best_score'] - best['cv']:+.4f}",
              f"test {test - best['test']:+.4f}")]
    return rows, members[0]


def _weights(config: dict) -> dict[str, float]:
    """run -> weight from an ensemble's config.json (members and weights)."""
    members, weights = config["members"], config["weights"]
    return dict(zip(members, weights)) if isinstance(weights, list) else dict(weights)


def lr_find(flow: Flow, scale: Scale, solution: pd.DataFrame, member: dict) -> list[tuple[str, str, str]]:
    """lr-find's suggestion against the recipe's lr: member 1 and the same run with the suggestion."""
    start = time.perf_counter()
    flags = member["flags"][:4] + DIGIT_FLAGS[:2]  # model, size, batch size: what lr-find takes
    out = flow("lr-find", DIGITS, *flags, "--steps", str(scale.lr_steps))
    suggestion = float(re.search(r"--lr ([0-9.e+-]+)", out).group(1))
    sweep = time.perf_counter() - start
    recipe_lr = flow.config(DIGITS, member["run"])["lr"]
    run, wall = flow.train(DIGITS, *member["flags"], *DIGIT_FLAGS, "--epochs", str(scale.epochs), "--lr", str(suggestion))
    cv, test = flow.summary(DIGITS, run)["best_score"], test_accuracy(flow.submit(DIGITS, run), solution)
    print(f"  lr-find ({sweep:.0f} s) suggests {suggestion:.1e}; the recipe's lr {recipe_lr:.1e}: "
          f"CV {member['cv']:.4f} test {member['test']:.4f}; the suggestion's: CV {cv:.4f} test {test:.4f} "
          f"(trained in {wall:.0f} s)", flush=True)
    return [(f"lr {recipe_lr:.1e} (the recipe's), {member['name']}", f"CV {member['cv']:.4f}", f"test {member['test']:.4f}"),
            (f"lr {suggestion:.1e} (lr-find's), same run otherwise", f"CV {cv:.4f}", f"test {test:.4f}")]


def saturated(flow: Flow, scale: Scale) -> list[tuple[str, str, str]]:
    """flow's best epoch on a saturated hold-out against the strict rule's (the first at the top)."""
    solution = prepare(flow, CACTUS, CACTUS_VAL_SIZE)
    run, _ = flow.train(CACTUS, *CACTUS_FLAGS, "--epochs", str(scale.saturated_epochs))
    summary, history = flow.summary(CACTUS, run), flow.metrics(CACTUS, run)
    top = history["val_metric"].max()
    first = int(history.loc[history["val_metric"] == top, "epoch"].iloc[0])
    auc, loss = test_auc_logloss(flow.submit(CACTUS, run), solution)
    strict, _ = flow.train(CACTUS, *CACTUS_FLAGS, "--epochs", str(first))
    strict_summary, strict_history = flow.summary(CACTUS, strict), flow.metrics(CACTUS, strict)
    same = np.isclose(strict_history["val_loss"].iloc[-1], history.loc[history["epoch"] == first, "val_loss"].iloc[0],
                      rtol=1e-5)
    strict_auc, strict_loss = test_auc_logloss(flow.submit(CACTUS, strict), solution)
    n_val = round(48 * CACTUS_VAL_SIZE)
    print(f"  {n_val}-image hold-out, val AUC by epoch: {' '.join(f'{v:.3f}' for v in history['val_metric'])}", flush=True)
    print(f"  flow: {summary['best_reason']}; test AUC {auc:.4f}, log loss {loss:.4f}", flush=True)
    print(f"  strict rule: epoch {first}, the first at AUC {top:.4f} (a second run, --epochs {first}, best "
          f"epoch {strict_summary['best_epoch']}, same epoch-{first} val loss as the first: {'yes' if same else 'NO'}); "
          f"test AUC {strict_auc:.4f}, log loss {strict_loss:.4f}", flush=True)
    return [(f"saturated: flow's best epoch {summary['best_epoch']} (tied, lowest val loss)",
             f"val AUC {summary['best_score']:.4f} loss {summary['best_loss']:.4f}", f"test AUC {auc:.4f} logloss {loss:.4f}"),
            (f"saturated: strict rule, epoch {first} (first at the top)",
             f"val AUC {strict_summary['best_score']:.4f} loss {strict_summary['best_loss']:.4f}",
             f"test AUC {strict_auc:.4f} logloss {strict_loss:.4f}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer digits, epochs and lr-find steps (about 4 min on 2 busy cores)")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    kaggle_trees.PER_CLASS[DIGITS] = scale.digits  # more digits than bench_kaggle's tree: a hold-out of 400
    train_n, test_n = scale.digits
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}; "
          f"Digit Recognizer tree {10 * train_n} training digits (hold-out {VAL_SIZE:.0%}), {10 * test_n} test; "
          f"{scale.epochs} epochs a run", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_medal_") as tmp:
        flow = Flow(Path(tmp))
        solution = prepare(flow, DIGITS, VAL_SIZE)
        print("1. blend", flush=True)
        rows, member = blend(flow, scale, solution)
        print("2. saturated metric (Aerial Cactus, AUC)", flush=True)
        rows += saturated(flow, scale)
        print("3. lr-find", flush=True)
        rows += lr_find(flow, scale, solution, member)
    width = max(len(r[0]) for r in rows)
    print()
    for figure, cv, test in rows:
        print(f"{figure:<{width}}  {cv:<26} {test}")
    print(f"wall time {time.perf_counter() - start:.0f} s (load {os.getloadavg()[0]:.1f} at the end)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
