"""Data parallel on this CPU, and the input pipeline against what one GPU consumes.

    (a) training images/s of `flow train` in 1 process and in 2 processes (`--nproc 2`, paddle.distributed
        over gloo), the same model, data and global batch (64 = 1 x 64 = 2 x 32): mnist, smallcnn at
        28 px, no augmentation, the rest of the mnist recipe (Adam, label smoothing, EMA 0.995). From
        each run's summary.json: the epochs after the first (warm-up, cache); and the wall time of
        the whole command (the launch of the processes included).
        One process uses every core for paddle's kernels; two processes share them out (one each here).
    (b) the input pipeline alone, no model: 640x480 JPEGs to 224 px uint8 batches of 64 through a paddle
        DataLoader, with the `light` augmentation preset, by worker processes (0 = the main process),
        timed from the first batch on (the workers' start-up left out):
          decode every epoch: open, decode, resize each JPEG (what most pipelines do), then augment
          flow's cache:       the decoded images from the uint8 cache (flow's epochs 2+), then augment
        Both are printed against what one GPU trains on: NVIDIA's PaddlePaddle ResNet-50 example
        reports about 2,700 images/s at 224 px with AMP on one A100 (DeepLearningExamples,
        PaddlePaddle/Classification/RN50v1.5); a pipeline slower than that starves the GPU.

    .venv/bin/python bench/bench_distributed.py [--epochs 3] [--n 1024] [--workers 0,1,2]
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

import kaggle_flow  # noqa: F401  (reads OMP_NUM_THREADS before paddle's import sets it)
import numpy as np
import paddle

GPU_IMAGES_PER_S = 2700  # ResNet-50, 224 px, AMP, one A100 (NVIDIA DeepLearningExamples, PaddlePaddle)
SIZE = 224
BATCH = 64

TRAIN = """
import json, sys, time
from kaggle_flow.cli import app
from kaggle_flow.runs import all_runs
from kaggle_flow.workspace import open_workspace
start = time.perf_counter()
try:
    app(sys.argv[1:])
except SystemExit as exit:
    if exit.code:
        raise
wall = time.perf_counter() - start
run = all_runs(open_workspace("mnist", remember_it=False).runs_dir)[-1]
print(json.dumps({"timing": run.summary.timing, "wall": wall}))
"""


def train_rate(nproc: int, epochs: int) -> tuple[float, float]:
    """Training images/s (epochs 2+, weighted by time) and the command's wall time, in a fresh process."""
    flags = ["--model", "smallcnn", "--sizes", "28", "--preset", "none", "--epochs", str(epochs),
             "--batch-size", str(64 // nproc), "--nproc", str(nproc), "--seed", "1"]
    env = {**os.environ, "FLOW_NO_PROGRESS": "1"}
    done = subprocess.run([sys.executable, "-c", TRAIN, "train", "mnist", *flags], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"flow train --nproc {nproc} failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    later = result["timing"][1:]
    return sum(t["images_per_s"] * t["seconds"] for t in later) / sum(t["seconds"] for t in later), result["wall"]


def pipeline_rate(dataset, workers: int) -> float:  # type: ignore[no-untyped-def]
    """Images/s of uint8 batches through a paddle DataLoader, from the first batch on (the workers'
    start-up, once per epoch, is left out: a real epoch has far more batches than this one)."""
    from kaggle_flow.data.loader import make_loader

    loader = make_loader(dataset, batch_size=BATCH, shuffle=True, workers=workers, drop_last=True)
    loader.set_epoch(1)
    start, n = None, 0
    for images, _ in loader.loader:  # the batches as they reach the device, before normalization
        if start is None:
            start = time.perf_counter()
        else:
            n += int(images.shape[0])
    return n / (time.perf_counter() - start)


class Decoding(paddle.io.Dataset):
    """Decodes every JPEG each time it is read, then augments: the usual pipeline, without a cache."""

    def __init__(self, paths: list[str], transform) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.paths, self.transform = paths, transform
        self.mean, self.std, self.rank, self.epoch = [0.5] * 3, [0.25] * 3, 0, 0

    def reseed(self, worker: int = 0) -> None:
        self.transform.set_random_seed(worker + 1)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        from kaggle_flow.data.images import load_image

        return self.transform(image=load_image(self.paths[i], SIZE, 3))["image"], np.int64(0)

    def __len__(self) -> int:
        return len(self.paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n", type=int, default=1024, help="640x480 JPEGs for the pipeline")
    parser.add_argument("--workers", default="0,1,2", help="DataLoader worker counts to time")
    args = parser.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="flow-bench-dist-"))
    sys.path.insert(0, str(Path(__file__).parent))
    import cv2
    import pandas as pd

    cv2.setNumThreads(0)  # OpenCV's thread pool, once used here, deadlocks the forked DataLoader workers
    from bench_cache import make_images

    from kaggle_flow.data import augment
    from kaggle_flow.data.images import build_cache
    from kaggle_flow.data.loader import ImageDataset
    from kaggle_flow.explore.split import ensure_folds
    from kaggle_flow.workspace import open_workspace

    ws = open_workspace("mnist")
    ensure_folds(ws, ws.table())  # data and the hold-out, outside any timing
    (one, one_wall), (two, two_wall) = train_rate(1, args.epochs), train_rate(2, args.epochs)

    Path("images").mkdir()
    paths = make_images(Path("images"), args.n)
    rows = pd.DataFrame({"id": [Path(p).name for p in paths], "path": paths, "label": 0, "split": "train"})
    transform = augment.build_train_transform("light", SIZE, 3)
    cached = ImageDataset(rows, build_cache(paths, SIZE, 3, Path("cache")), mean=[0.5] * 3, std=[0.25] * 3, transform=transform)
    counts = [int(w) for w in args.workers.split(",")]
    decode = {w: pipeline_rate(Decoding(paths, transform), w) for w in counts}
    cache = {w: pipeline_rate(cached, w) for w in counts}

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, paddle CPU (shared machine: figures are noisy)")
    print(f"(a) training, mnist smallcnn 28 px, global batch 64, epochs 2-{args.epochs}")
    print(f"    1 process  (1 x 64) : {one:8.1f} images/s   wall {one_wall:5.1f} s")
    print(f"    2 processes (2 x 32): {two:8.1f} images/s   wall {two_wall:5.1f} s   (x{two / one:.2f})")
    print(f"(b) input pipeline, {args.n} JPEGs 640x480 -> {SIZE} px, `light` augmentation, uint8 batches of {BATCH}")
    print(f"    one A100 trains ResNet-50 (AMP) at about {GPU_IMAGES_PER_S} images/s")
    for w in counts:
        print(f"    {w} workers: decode every epoch {decode[w]:7.1f} images/s ({decode[w] / GPU_IMAGES_PER_S:5.1%} of the GPU); "
              f"flow's cache {cache[w]:7.1f} images/s ({cache[w] / GPU_IMAGES_PER_S:5.1%})")
    if 1 in counts:  # one worker process: about one core's worth
        print(f"    cores to feed that GPU at one worker's rate: about {GPU_IMAGES_PER_S / cache[1]:.1f} from flow's cache, "
              f"{GPU_IMAGES_PER_S / decode[1]:.1f} decoding every epoch")


if __name__ == "__main__":
    main()
