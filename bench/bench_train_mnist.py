"""MNIST-5k: flow's default recipe against the course recipe, on the same data and hold-out fold.

    (a) `flow train mnist` with the recipe of competitions/mnist.toml, through kaggle_flow.train
    (b) the course recipe: paddle.vision.models.LeNet, Adam lr 1e-3, 5 epochs, batch 64,
        paddle.Model.fit with paddle.metric.Accuracy, images scaled with mean = std = 127.5

Both train on the same 3,600 images and are scored on the same stratified 10% hold-out (400
images, seed 42). Prints held-out accuracy and wall time of each. Runs in a temporary folder.

    .venv/bin/python bench/bench_train_mnist.py
"""

from __future__ import annotations

import os
import platform
import tempfile
import time

os.environ.setdefault("FLOW_NO_PROGRESS", "1")


def flow_recipe() -> tuple[float, float, dict]:
    from kaggle_flow.train import train
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace("mnist")
    ws.table()  # materialize the data outside the timing
    start = time.perf_counter()
    run = train(ws)
    seconds = time.perf_counter() - start
    return float(run.summary.best_score), seconds, run.config.model_dump()


def course_recipe() -> tuple[float, float]:
    import numpy as np
    import paddle
    from PIL import Image

    from kaggle_flow.split import ensure_folds, train_val
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace("mnist")
    table = ws.table()
    train_rows, val_rows = train_val(table, ensure_folds(ws, table), 0)

    class Digits(paddle.io.Dataset):
        def __init__(self, rows) -> None:  # type: ignore[no-untyped-def]
            super().__init__()
            self.x = np.stack([np.asarray(Image.open(p), np.float32) for p in rows["path"]])[:, None]
            self.x = (self.x - 127.5) / 127.5
            self.y = rows["label"].to_numpy(dtype=np.int64)[:, None]

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            return self.x[i], self.y[i]

        def __len__(self) -> int:
            return len(self.y)

    train_data, val_data = Digits(train_rows), Digits(val_rows)
    paddle.seed(42)
    start = time.perf_counter()
    model = paddle.Model(paddle.vision.models.LeNet(num_classes=10))
    model.prepare(
        paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters()),
        paddle.nn.CrossEntropyLoss(),
        paddle.metric.Accuracy(),
    )
    model.fit(train_data, epochs=5, batch_size=64, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    result = model.evaluate(val_data, batch_size=128, verbose=0)
    acc = result["acc"]
    return float(acc[0] if isinstance(acc, (list, tuple)) else acc), seconds


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    os.chdir(tempfile.mkdtemp(prefix="flow-bench-mnist-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores; working in {os.getcwd()}")
    acc_a, sec_a, config = flow_recipe()
    acc_b, sec_b = course_recipe()
    recipe = (
        f"{config['model']}, {config['epochs']} epochs, batch {config['batch_size']}, {config['optimizer']} lr "
        f"{config['lr']:g} {config['schedule']} (warmup {config['warmup_epochs']} epochs), label smoothing "
        f"{config['label_smoothing']}, EMA {config['ema']}, preset {config['preset']}, {config['image_size']} px"
    )
    print()
    print("MNIST-5k, hold-out fold 0 (400 images, stratified 10%, seed 42)")
    print(f"(a) flow default recipe [{recipe}]")
    print(f"    held-out accuracy {acc_a:.4f}   wall time {sec_a:.1f} s")
    print("(b) course recipe [paddle.vision LeNet, Adam lr 1e-3, 5 epochs, batch 64, paddle.Model.fit]")
    print(f"    held-out accuracy {acc_b:.4f}   wall time {sec_b:.1f} s")


if __name__ == "__main__":
    main()
