"""How fast `flow eda` reads a large data set: header scan, perceptual hashes and full decode, side by side.

Writes N 640x480 JPEGs in the lemon layout into a temp folder (not timed), then times:
  - the header scan alone (hash + PIL header, process pool: scan_images without perceptual hashes),
  - the same scan with the perceptual hash of every image (scan_images(perceptual=True): each image
    decoded small, JPEG draft mode, for its phash), as run_eda scans when its hash cache is empty;
    issue 27's target: 20,000 images hashed in at most 60 s on 2 cores,
  - a full-decode baseline over the same files with the same pool (PIL open + convert("RGB")),
  - run_eda end to end (table, scan with hashes, near twins, report, CSVs, plots; an empty hash cache).

    .venv/bin/python bench/bench_eda.py            # 50,000 images
    .venv/bin/python bench/bench_eda.py --n 5000
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from kaggle_flow.explore import eda, scan
from kaggle_flow.competition import get_competition
from kaggle_flow.workspace import Workspace

NOISE = 16  # fine-grain noise layers shared by the images (drawing one per image costs more than its JPEG)
GENERATE_CHUNK = 500  # images written per task of the generating pool


def _image(rng: np.random.Generator, noise: np.ndarray) -> bytes:
    """A smooth 640x480 colour image of its own (so its perceptual hash is its own: identical pixels
    would make every pair of the 50,000 a near twin), with a fine grain for realistic sizes (~75 KB)."""
    small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    image = cv2.add(cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC), noise)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def _write_chunk(job: tuple[list[tuple[Path, int]], int]) -> None:
    files, seed = job
    cv2.setNumThreads(1)  # one image per process at a time: the pool is the parallelism
    rng = np.random.default_rng(seed)
    noise = [np.random.default_rng(k).integers(0, 12, (480, 640, 3), dtype=np.uint8) for k in range(NOISE)]
    for path, i in files:
        path.write_bytes(_image(rng, noise[i % NOISE]))


def generate(root: Path, n: int, workers: int) -> None:
    """n JPEGs of the lemon layout, a tenth of them test images, written by a pool (seeded per chunk)."""
    n_test = n // 10
    (root / "train_images").mkdir(parents=True)
    (root / "test_images").mkdir()
    names = [f"train_{i:06d}.jpg" if i < n - n_test else f"test_{i:06d}.jpg" for i in range(n)]
    files = [(root / ("train_images" if i < n - n_test else "test_images") / name, i) for i, name in enumerate(names)]
    jobs = [(files[i : i + GENERATE_CHUNK], i) for i in range(0, n, GENERATE_CHUNK)]
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        list(pool.map(_write_chunk, jobs))
    rows = "".join(f"{name},{i % 4}\n" for i, name in enumerate(names[: n - n_test]))
    (root / "train_images.csv").write_text("id,class_num\n" + rows)


def _decode_chunk(paths: Sequence[str]) -> int:
    from PIL import Image

    for p in paths:
        with Image.open(p) as image:
            image.convert("RGB")
    return len(paths)


def full_decode(paths: list[str], workers: int) -> None:
    """The baseline: decode every pixel, same chunks and same pool as the header scan."""
    chunks = [paths[i : i + scan.CHUNK] for i in range(0, len(paths), scan.CHUNK)]
    if workers == 1:
        for chunk in chunks:
            _decode_chunk(chunk)
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for _ in pool.map(_decode_chunk, chunks):
            pass


def timed(fn, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="number of images (default 50,000)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    args = parser.parse_args()
    os.environ["FLOW_NO_PROGRESS"] = "1"
    workers = args.workers or scan._workers()

    tmp = Path(tempfile.mkdtemp(prefix="flow-bench-eda-"))
    try:
        start = time.perf_counter()
        generate(tmp / "data", args.n, workers)
        size = sum(f.stat().st_size for f in (tmp / "data").rglob("*.jpg"))
        took = time.perf_counter() - start
        print(f"generated {args.n} 640x480 JPEGs ({size / 2**20:.0f} MiB) in {took:.1f} s (not timed)")
        paths = sorted(str(p) for p in (tmp / "data").rglob("*.jpg"))

        header_s = timed(scan.scan_images, paths, workers=workers, show_progress=False)
        phash_s = timed(scan.scan_images, paths, perceptual=True, workers=workers, show_progress=False)
        decode_s = timed(full_decode, paths, workers)
        ws = Workspace(get_competition("lemon"), tmp / "data", tmp / "runs" / "lemon", tmp / "submissions")
        run_s = timed(eda.run_eda, ws, workers=workers)

        n = len(paths)
        print(f"workers: {workers}, cpu cores: {os.cpu_count()}")
        print(f"{'':32s}{'seconds':>10s}{'images/s':>12s}")
        print(f"{'header scan, no hashes':32s}{header_s:10.2f}{n / header_s:12.0f}")
        print(f"{'header scan + perceptual hash':32s}{phash_s:10.2f}{n / phash_s:12.0f}")
        print(f"{'full decode (PIL to RGB)':32s}{decode_s:10.2f}{n / decode_s:12.0f}")
        print(f"{'run_eda end to end':32s}{run_s:10.2f}{n / run_s:12.0f}")
        print(f"header scan is {decode_s / header_s:.1f}x faster than a full decode; the perceptual hashes make "
              f"the scan {phash_s / header_s:.1f}x slower")
        print(f"20,000 images hashed (header scan + phash) at this rate: {20_000 * phash_s / n:.1f} s "
              f"(issue 27's target: at most 60 s on 2 cores)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
