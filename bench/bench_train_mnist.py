"""MNIST-5k: flow's recipe against the course recipe, on the same data, fold and seeds.

    (a) `flow run mnist`'s training: the recipe of competitions/mnist.toml through kaggle_flow.engine.train,
        one process (paddle on every core)
    (b) the same recipe with `--nproc N` (N = the cores, one thread each; paddle.distributed over gloo)
    (c) the course recipe: paddle.vision.models.LeNet, Adam lr 1e-3, 5 epochs, batch 64,
        paddle.Model.fit with paddle.metric.Accuracy, images scaled with mean = std = 127.5

All train on the same 3,600 images, once per seed. Printed for each run: the accuracy on the
stratified 10% hold-out (400 images, split seed 42), the accuracy on the 1,000 test digits (what
`flow run mnist` scores its submission on) and the wall time of training; then the mean and range
over the seeds. One seed repeats a CPU run exactly, so a single seed says nothing about the spread:
give several. Runs in a temporary folder.

    .venv/bin/python bench/bench_train_mnist.py [--seeds 42,1,2] [--no-nproc]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import dataclass

os.environ.setdefault("FLOW_NO_PROGRESS", "1")


@dataclass(frozen=True)
class Result:
    held_out: float
    test: float
    seconds: float


def _test_rows():  # type: ignore[no-untyped-def]
    """The 1,000 test rows and their labels (the competition's solution.csv)."""
    import pandas as pd

    from kaggle_flow.workspace import open_workspace

    ws = open_workspace("mnist")
    table = ws.table()
    test = table[table["split"] == "test"].reset_index(drop=True)
    solution = pd.read_csv(ws.data_dir / "solution.csv", dtype={"id": str}).set_index("id")["label"]
    return test, solution.loc[test["id"]].to_numpy(dtype=int)


def flow_recipe(seed: int, nproc: int | None = None) -> tuple[Result, dict]:
    from kaggle_flow.engine.distributed import Launch
    from kaggle_flow.submit.predict import predict_probs
    from kaggle_flow.engine.train import train
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace("mnist")
    test, labels = _test_rows()  # materializes the data outside the timing
    start = time.perf_counter()
    run = train(ws, {"seed": seed}, launch=Launch(nproc=nproc) if nproc else None)
    seconds = time.perf_counter() - start
    test_acc = float((predict_probs(run, test).argmax(1) == labels).mean())
    return Result(float(run.summary.best_score), test_acc, seconds), run.config.model_dump()


def course_recipe(seed: int) -> Result:
    import numpy as np
    import paddle
    from PIL import Image

    from kaggle_flow.explore.split import ensure_folds, train_val
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace("mnist")
    table = ws.table()
    train_rows, val_rows = train_val(table, ensure_folds(ws, table), 0)
    test_rows, test_labels = _test_rows()

    class Digits(paddle.io.Dataset):
        def __init__(self, paths, labels) -> None:  # type: ignore[no-untyped-def]
            super().__init__()
            self.x = np.stack([np.asarray(Image.open(p), np.float32) for p in paths])[:, None]
            self.x = (self.x - 127.5) / 127.5
            self.y = np.asarray(labels, dtype=np.int64)[:, None]

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            return self.x[i], self.y[i]

        def __len__(self) -> int:
            return len(self.y)

    def data(rows, labels=None):  # type: ignore[no-untyped-def]
        return Digits(rows["path"], rows["label"] if labels is None else labels)

    train_data, val_data, test_data = data(train_rows), data(val_rows), data(test_rows, test_labels)
    paddle.seed(seed)
    start = time.perf_counter()
    model = paddle.Model(paddle.vision.models.LeNet(num_classes=10))
    model.prepare(
        paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters()),
        paddle.nn.CrossEntropyLoss(),
        paddle.metric.Accuracy(),
    )
    model.fit(train_data, epochs=5, batch_size=64, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start

    def accuracy(dataset) -> float:  # type: ignore[no-untyped-def]
        acc = model.evaluate(dataset, batch_size=128, verbose=0)["acc"]
        return float(acc[0] if isinstance(acc, (list, tuple)) else acc)

    return Result(accuracy(val_data), accuracy(test_data), seconds)


def _summary(results: list[Result]) -> str:
    tests = [r.test for r in results]
    mean = sum(tests) / len(tests)
    seconds = sum(r.seconds for r in results) / len(results)
    return f"test accuracy mean {mean:.4f} (range {min(tests):.4f}-{max(tests):.4f}), training {seconds:.1f} s on average"


def main() -> None:
    import warnings

    from kaggle_flow.machine import usable_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,1,2", help="comma-separated training seeds (42: the recipe's own)")
    parser.add_argument("--no-nproc", action="store_true", help="leave out (b), the data-parallel run")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cores = usable_cores()
    warnings.filterwarnings("ignore")
    os.chdir(tempfile.mkdtemp(prefix="flow-bench-mnist-"))
    print(f"machine: {platform.machine()}, {cores} CPU cores; working in {os.getcwd()}", flush=True)
    recipes = {"a": [], "b": [], "c": []}
    config: dict = {}
    for seed in seeds:
        result, config = flow_recipe(seed)
        recipes["a"].append(result)
        if cores > 1 and not args.no_nproc:
            recipes["b"].append(flow_recipe(seed, nproc=cores)[0])
        recipes["c"].append(course_recipe(seed))
        for key in "abc":
            if len(recipes[key]) == len(recipes["a"]):
                r = recipes[key][-1]
                print(f"({key}) seed {seed:>3}: held-out {r.held_out:.4f}  test {r.test:.4f}  training {r.seconds:6.1f} s", flush=True)
    recipe = (
        f"{config['model']}, {config['epochs']} epochs, batch {config['batch_size']}, {config['optimizer']} lr "
        f"{config['lr']:g} {config['schedule']} (warmup {config['warmup_epochs']} epochs), label smoothing "
        f"{config['label_smoothing']}, EMA {config['ema']}, preset {config['preset']}, {config['image_size']} px"
    )
    print()
    print("MNIST-5k: 3,600 training digits; hold-out fold 0 (400, stratified 10%, seed 42); the 1,000 test digits")
    print(f"(a) flow's recipe, 1 process on {cores} cores [{recipe}]")
    print(f"    {_summary(recipes['a'])}")
    if recipes["b"]:
        print(f"(b) the same, --nproc {cores} (global batch {config['batch_size']})")
        print(f"    {_summary(recipes['b'])}")
    print("(c) course recipe [paddle.vision LeNet, Adam lr 1e-3, 5 epochs, batch 64, paddle.Model.fit]")
    print(f"    {_summary(recipes['c'])}")


if __name__ == "__main__":
    main()
