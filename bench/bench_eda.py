"""How fast `flow eda` reads a large data set: header scan vs full decode, side by side.

Writes N 640x480 JPEGs in the lemon layout into a temp folder (not timed), then times:
  - the header scan of run_eda (hash + PIL header, process pool),
  - a full-decode baseline over the same files with the same pool (PIL open + convert("RGB")),
  - run_eda end to end (table, scan, report, CSVs, plots).

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

DISTINCT = 16  # distinct encoded images; every file still gets unique bytes (a JPEG comment)


def _base_images(seed: int = 0) -> list[bytes]:
    """A few smooth 640x480 colour images encoded once (smooth: realistic file sizes, ~40 KB)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(DISTINCT):
        small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        image = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)
        image = cv2.add(image, rng.integers(0, 12, image.shape, dtype=np.uint8))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(buf.tobytes())
    return out


def _with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The same JPEG with a COM segment after SOI: identical pixels, distinct bytes."""
    return jpeg[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + jpeg[2:]


def generate(root: Path, n: int) -> None:
    bases = _base_images()
    n_test = n // 10
    rows = []
    (root / "train_images").mkdir(parents=True)
    (root / "test_images").mkdir()
    for i in range(n):
        data = _with_comment(bases[i % DISTINCT], f"bench image {i}".encode())
        if i < n - n_test:
            name = f"train_{i:06d}.jpg"
            (root / "train_images" / name).write_bytes(data)
            rows.append(f"{name},{i % 4}\n")
        else:
            (root / "test_images" / f"test_{i:06d}.jpg").write_bytes(data)
    (root / "train_images.csv").write_text("id,class_num\n" + "".join(rows))


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
        generate(tmp / "data", args.n)
        size = sum(f.stat().st_size for f in (tmp / "data").rglob("*.jpg"))
        took = time.perf_counter() - start
        print(f"generated {args.n} 640x480 JPEGs ({size / 2**20:.0f} MiB) in {took:.1f} s (not timed)")
        paths = sorted(str(p) for p in (tmp / "data").rglob("*.jpg"))

        header_s = timed(scan.scan_images, paths, workers=workers, show_progress=False)
        decode_s = timed(full_decode, paths, workers)
        ws = Workspace(get_competition("lemon"), tmp / "data", tmp / "runs" / "lemon", tmp / "submissions")
        run_s = timed(eda.run_eda, ws, workers=workers)

        n = len(paths)
        print(f"workers: {workers}, cpu cores: {os.cpu_count()}")
        print(f"{'':28s}{'seconds':>10s}{'images/s':>12s}")
        print(f"{'header scan (flow eda)':28s}{header_s:10.2f}{n / header_s:12.0f}")
        print(f"{'full decode (PIL to RGB)':28s}{decode_s:10.2f}{n / decode_s:12.0f}")
        print(f"{'run_eda end to end':28s}{run_s:10.2f}{n / run_s:12.0f}")
        print(f"header scan is {decode_s / header_s:.1f}x faster than a full decode")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
