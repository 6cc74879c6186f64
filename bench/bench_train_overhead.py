"""Training throughput: flow's loop against a plain hand-written paddle loop, same model, batch, data.

    (a) kaggle_flow.engine.train on mnist, smallcnn at 28 px, batch 64, Adam + cosine, no augmentation
        (preset none), no EMA/mixup: images/s of the training steps, from summary.json
    (b) a plain loop: the same model class, the same decoded images in memory, the same batch size,
        optimizer and schedule, paddle.io.DataLoader over a numpy Dataset, forward/backward/step

Both skip epoch 1 (warm-up, cache build) and time the training steps of the later epochs only;
validation is not timed in either. Prints images/s of each and the ratio flow / plain.

    .venv/bin/python bench/bench_train_overhead.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("FLOW_NO_PROGRESS", "1")

OVERRIDES = {
    "model": "smallcnn", "sizes": [28], "batch_size": 64, "optimizer": "adam", "lr": 3e-3,
    "schedule": "cosine", "warmup_epochs": 0.5, "label_smoothing": 0.1, "preset": "none",
    "ema": 0.0, "mixup": 0.0, "cutmix": 0.0, "balance": False, "workers": 0,
}


def flow_loop(epochs: int) -> float:
    from kaggle_flow.engine.train import train
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace("mnist")
    run = train(ws, {**OVERRIDES, "epochs": epochs})
    timing = run.summary.timing
    later = timing[1:]
    return sum(t["images_per_s"] * t["seconds"] for t in later) / sum(t["seconds"] for t in later)


def plain_loop(epochs: int) -> float:
    import numpy as np
    import paddle
    import paddle.nn.functional as F
    from PIL import Image

    from kaggle_flow.models import create_model
    from kaggle_flow.explore.split import ensure_folds, train_val
    from kaggle_flow.workspace import open_workspace

    from kaggle_flow.machine import use_cpu_threads

    use_cpu_threads()  # the same threads as flow's loop: every usable core
    ws = open_workspace("mnist")
    table = ws.table()
    rows, _ = train_val(table, ensure_folds(ws, table), 0)
    x = np.stack([np.asarray(Image.open(p), np.float32) for p in rows["path"]])[:, None] / 255.0
    x = (x - 0.1307) / 0.3081
    y = rows["label"].to_numpy(dtype=np.int64)

    class Arrays(paddle.io.Dataset):
        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            return x[i], y[i]

        def __len__(self) -> int:
            return len(y)

    paddle.seed(0)
    model = create_model("smallcnn", 10, 1)
    loader = paddle.io.DataLoader(Arrays(), batch_size=64, shuffle=True, drop_last=True, num_workers=0)
    steps = len(loader) * epochs
    cosine = paddle.optimizer.lr.CosineAnnealingDecay(3e-3, T_max=steps)
    schedule = paddle.optimizer.lr.LinearWarmup(cosine, warmup_steps=len(loader) // 2, start_lr=0.0, end_lr=3e-3)
    optimizer = paddle.optimizer.Adam(learning_rate=schedule, parameters=model.parameters())
    images, seconds = 0, 0.0
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        for xb, yb in loader:
            target = F.label_smooth(F.one_hot(yb, 10), epsilon=0.1)
            loss = F.cross_entropy(model(xb), target, soft_label=True)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            schedule.step()
            if epoch > 0:
                images += xb.shape[0]
        if epoch > 0:
            seconds += time.perf_counter() - start
    return images / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="flow-bench-overhead-"))
    from kaggle_flow.explore.split import ensure_folds
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace("mnist")
    ensure_folds(ws, ws.table())  # data and the 10% hold-out, outside any timing
    plain = plain_loop(args.epochs)
    flow = flow_loop(args.epochs)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, paddle CPU")
    print(f"plain paddle loop : {plain:8.1f} images/s")
    print(f"flow train        : {flow:8.1f} images/s")
    print(f"ratio flow/plain  : {flow / plain:8.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
