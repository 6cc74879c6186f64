"""Data loading from epoch 2 on: flow's uint8 image cache against decoding the JPEGs every epoch.

Lemon-sized images (640x480 JPEGs) loaded at 224 px, 3 channels, as the uint8 HWC items a loader batches:

    (a) decode every epoch: each item opens the JPEG, decodes, resizes (kaggle_flow.data.images.load_image)
    (b) flow: epoch 1 decodes once into the on-disk cache (build_cache); epoch 2 reads the cache
        through kaggle_flow.data.loader.ImageDataset

Prints images/s of an epoch for each, the cache build time, and the ratio (target >= 5x).

    .venv/bin/python bench/bench_cache.py [--n 400]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

SIZE = 224


def make_images(folder: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
    paths = []
    for i in range(n):
        image = np.roll(base, shift=i * 7, axis=1)
        path = folder / f"lemon_{i:05d}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(str(path))
    return paths


def epoch(items) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    n = 0
    for _ in items:
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="number of 640x480 JPEGs")
    args = parser.parse_args()

    from kaggle_flow.data.images import build_cache, load_image
    from kaggle_flow.data.loader import ImageDataset

    work = Path(tempfile.mkdtemp(prefix="flow-bench-cache-"))
    (work / "images").mkdir()
    paths = make_images(work / "images", args.n)
    rows = pd.DataFrame({"id": [Path(p).name for p in paths], "path": paths, "label": 0, "split": "train"})
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

    decode_rate = epoch(load_image(p, SIZE, 3) for p in paths)

    start = time.perf_counter()
    cache = build_cache(paths, SIZE, 3, work / "cache")
    build_seconds = time.perf_counter() - start
    cache = build_cache(paths, SIZE, 3, work / "cache")  # epoch 2: the cache already exists on disk
    dataset = ImageDataset(rows, cache, mean=mean, std=std)
    cached_rate = epoch(dataset[i] for i in range(len(dataset)))

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores; {args.n} JPEGs of 640x480 -> {SIZE} px")
    print(f"decode every epoch     : {decode_rate:9.1f} images/s")
    print(f"flow cache, epoch 1    : {args.n / build_seconds:9.1f} images/s (decode once into the cache)")
    print(f"flow cache, epoch 2+   : {cached_rate:9.1f} images/s")
    print(f"ratio cache/decode     : {cached_rate / decode_rate:9.1f}x  (target >= 5x)")


if __name__ == "__main__":
    main()
