"""Kaggle downloads, start to finish with no flags: `flow init`, `flow import`, `flow run` on each layout.

For each tree of bench/kaggle_trees.py (generated from the embedded digits, laid out as the download;
here `shape_only`: each digit tinted and mirrored at random, so only its shape tells the class, 80
training and 40 test images a class; Digit Recognizer: real grey MNIST digits, 100 and 40 a class):

    flow init NAME --from TREE --metric M     (M: the competition's metric, which a download does not say)
    flow import NAME TREE
    flow run NAME                             (the automatic recipe, no flags)

then checks the written CSV against Kaggle's format (the sample's columns, ids and row order) and
scores it against the generated answers with scikit-learn directly, not with flow's own metrics.
Prints one row per layout: the metric, its value, whether the format held, the wall time of `flow run`.

The multi-label trees of bench/multilabel_trees.py (Planet, Human Protein Atlas, iMet, Plant Pathology
2021: composites of real MNIST digits, the labels the digits shown) go the same way and print the test
score of flow's CSV (at the thresholds `flow run` fitted on the out-of-fold predictions) beside the
same run's test probabilities decided at 0.5, and beside bench/multilabel_reference.py (a plain paddle
CNN notebook) trained for the same wall time as `flow run` took.

    .venv/bin/python bench/bench_kaggle.py [--only aptos,cassava,planet] [--no-reference]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kaggle_trees import LAYOUTS, expected_toml, make, shape_only  # noqa: E402
from multilabel_reference import sklearn_metric  # noqa: E402
from multilabel_trees import TREES, multi_hot  # noqa: E402

FLOW = [sys.executable, "-m", "kaggle_flow.cli"]


def sklearn_score(metric: str, submission: pd.DataFrame, solution: pd.DataFrame, toml: dict) -> float:
    """The metric of a submission against the answers, computed by scikit-learn (rows matched by id)."""
    from sklearn import metrics as m

    sub, fmt = toml.get("submission", {}), toml["classes"]
    id_col = sub.get("id_column", "id")
    solution = solution.set_index(id_col).loc[submission[id_col]]
    value_cols = [c for c in submission.columns if c != id_col]
    kind = sub.get("kind", "label")
    if kind == "probabilities":
        truth = solution[value_cols].to_numpy(dtype=int)
        probs = submission[value_cols].to_numpy(dtype=float)
        if metric == "mean_auc":
            return float(np.mean([m.roc_auc_score(truth[:, j], probs[:, j]) for j in range(truth.shape[1])]))
        return float(m.log_loss(truth.argmax(1), probs, labels=list(range(len(fmt)))))
    truth = solution[value_cols[0]].astype(str).to_numpy()
    if kind == "probability":
        positive = sub.get("positive", fmt[1])
        y = (truth == str(fmt.index(positive))) | (truth == positive)
        p = submission[value_cols[0]].to_numpy(dtype=float)
        return float(m.roc_auc_score(y, p) if metric == "auc" else m.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))
    pred = submission[value_cols[0]].astype(str).to_numpy()
    if metric == "kappa":
        return float(m.cohen_kappa_score(truth.astype(int), pred.astype(int), weights="quadratic"))
    if metric == "micro_f1":
        return float(m.f1_score(truth, pred, average="micro"))
    return float(m.accuracy_score(truth, pred))


def one(name: str, root: Path) -> dict:
    tree = make(name, root / "downloads")
    toml = tomllib.loads(expected_toml(name))
    metric = toml["metric"]
    work = root / name
    work.mkdir()
    flow = _flow_in(work, name)
    flow("init", name, "--from", str(tree), "--metric", metric)
    flow("import", name, str(tree))
    start = time.perf_counter()
    flow("run", name)
    wall = time.perf_counter() - start
    (csv,) = [p for p in (work / "submissions" / name).glob("*.csv") if p.name != "ledger.csv"]
    submission = pd.read_csv(csv, dtype=str)
    sample = pd.read_csv(work / "data" / name / toml.get("submission", {}).get("sample", "sample_submission.csv"), dtype=str)
    id_col = toml.get("submission", {}).get("id_column", "id")
    fits = list(submission.columns) == list(sample.columns) and submission[id_col].tolist() == sample[id_col].tolist()
    solution = pd.read_csv(work / "data" / name / "solution.csv", dtype=str)
    return {"layout": name, "metric": metric, "score": sklearn_score(metric, submission, solution, toml),
            "format": "ok" if fits else "WRONG", "run_s": wall}


def _flow_in(work: Path, name: str):
    env = {**os.environ, "FLOW_NO_PROGRESS": "1"}

    def flow(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*FLOW, *args], cwd=work, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name}: flow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    return flow


def _at_half(work: Path, name: str, solution: pd.DataFrame) -> float:
    """The test score of the best run's probabilities decided at 0.5 (flow's own predict, no thresholds)."""
    from kaggle_flow.submit.predict import predict_test
    from kaggle_flow.target import TARGETS
    from kaggle_flow.workspace import open_workspace

    here = Path.cwd()
    os.chdir(work)
    try:
        pred = predict_test(open_workspace(name, remember_it=False), save=False)
    finally:
        os.chdir(here)
    tree = TREES[name]
    by_id = dict(zip(pred.test["id"].map(lambda i: Path(str(i)).name), range(len(pred.test))))
    ids = solution[tree.id_column].map(lambda i: by_id.get(i, by_id.get(f"{i}.jpg", by_id.get(f"{i}.png"))))
    decided = TARGETS["multi"].decide(pred.probs[ids.to_numpy(dtype=int)])
    return sklearn_metric(tree.metric, multi_hot(solution[tree.label_column], tree), decided)


def one_multi(name: str, root: Path, reference: bool) -> dict:
    from multilabel_reference import run as reference_run
    from multilabel_trees import make as make_multi

    tree_dir, tree = make_multi(name, root / "downloads"), TREES[name]
    work = root / name
    work.mkdir()
    flow = _flow_in(work, name)
    flow("init", name, "--from", str(tree_dir), "--metric", tree.metric)
    flow("import", name, str(tree_dir))
    start = time.perf_counter()
    output = flow("run", name).stdout
    wall = time.perf_counter() - start
    chosen = {key: re.search(rf"^\s+{key}\s+(\S+?):", output, re.M) for key in ("model", "epochs")}
    recipe = ", ".join(f"{m[1]}" + (" epochs" if key == "epochs" else "") for key, m in chosen.items() if m)
    (csv,) = [p for p in (work / "submissions" / name).glob("*.csv") if p.name != "ledger.csv"]
    submission = pd.read_csv(csv, dtype=str, keep_default_na=False)
    sample = pd.read_csv(next(tree_dir.glob("sample_submission*.csv")), dtype=str)
    fits = list(submission.columns) == list(sample.columns) and submission[tree.id_column].tolist() == sample[tree.id_column].tolist()
    solution = pd.read_csv(tree_dir / "solution.csv", dtype=str, keep_default_na=False)
    truth = multi_hot(solution[tree.label_column], tree)
    score = sklearn_metric(tree.metric, truth, multi_hot(submission.set_index(tree.id_column).loc[solution[tree.id_column], tree.label_column], tree))
    row = {"layout": name, "metric": tree.metric, "score": score, "at_half": _at_half(work, name, solution),
           "format": "ok" if fits else "WRONG", "run_s": wall, "recipe": recipe}
    if reference:
        row["reference"] = reference_run(tree_dir, name, wall)
    return row


def print_multi(row: dict) -> None:
    line = (f"{row['layout']:<18} {row['metric']:<9} {row['score']:.4f} at the fitted thresholds, {row['at_half']:.4f} at 0.5  "
            f"format {row['format']:<5}  flow run {row['run_s']:6.1f} s ({row['recipe']})")
    if "reference" in row:
        ref = row["reference"]
        line += (f"  | reference {ref['score']:.4f} (threshold {ref['threshold']:.2f}; {ref['at_half']:.4f} at 0.5), "
                 f"{ref['epochs']} epochs in {ref['seconds']:.0f} s")
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated layouts (default: all)")
    parser.add_argument("--no-reference", action="store_true", help="skip the plain reference beside the multi-label trees")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else [*LAYOUTS, *TREES]
    shape_only()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores; flow run with no flags on each layout")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            if name in TREES:
                rows.append(one_multi(name, Path(tmp), not args.no_reference))
                print_multi(rows[-1])
                continue
            row = one(name, Path(tmp))
            rows.append(row)
            score = f"{row['score']:.4f}" if abs(row["score"]) >= 0.01 else f"{row['score']:.1e}"
            print(f"{row['layout']:<18} {row['metric']:<9} {score:>7}  format {row['format']:<5}  flow run {row['run_s']:6.1f} s",
                  flush=True)
    print(f"all formats as the sample: {all(r['format'] == 'ok' for r in rows)}; "
          f"longest flow run {max(r['run_s'] for r in rows):.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
