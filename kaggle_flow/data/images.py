"""Image files into uint8 arrays: decoding, and the cache that decodes each file once.

Decoding a JPEG costs far more than anything done to it afterwards, so every image is decoded and
resized once, to the training size, into a uint8 array on disk (a numpy .npy opened as a memmap):

    runs/COMP/cache/{size}px-{channels}ch-{key}.npy    [N, size, size, channels] uint8
    runs/COMP/cache/{size}px-{channels}ch-{key}.json   the file list and the images that failed

A sample of several files (layout.channel_files: its table path a pattern, kaggle_flow.sample_files)
is read file by file as grey and stacked into its channels (`load_sample`); `preview_rgb` shows the
first three channels of any image as RGB, for galleries and previews.

The key hashes the files (every file of a sample: path, byte size, modification time), the size and
the channels, so a changed file list or size builds a new cache; an unchanged one is reused by the
next run. The cache is filled in parallel (threads: PIL releases the GIL while decoding and
resizing) before epoch 1, so no epoch decodes a file. An image that cannot be read is left out with a warning that lists it.
It is written through a file handle, its blocks reserved first and the free space checked before
that: on a full disk, one line, never the SIGBUS a memory map over a sparse file would get.
No paddle here: `flow augment` reads images too, and needs no training library.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from kaggle_flow import console
from kaggle_flow.fileio import atomic_path, disk_full_error, ensure_free_space, reap_temps, write_json
from kaggle_flow.sample_files import sample_channels, sample_files

CACHE_VERSION = 1  # bump when the decoding below changes, so old caches are not reused


# --- decoding ---------------------------------------------------------------------------------


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey images scaled to 0..255 (PIL's convert would clip them)."""
    array = np.asarray(image)
    top = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
    if image.mode == "F":
        top = max(float(array.max(initial=0)), 1.0) if array.max(initial=0) > 1.0 else 1.0
    return Image.fromarray(np.clip(array.astype(np.float64) * (255.0 / top), 0, 255).astype(np.uint8), "L")


GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})  # PIL modes of one grey channel


GREY_RGB = 4  # grey levels: how far an RGB pixel's channels may stray apart and the image still count as grey


def load_image(path: str | os.PathLike[str], size: int, channels: int) -> np.ndarray:
    """One image file -> uint8 [size, size, channels]: EXIF-rotated, alpha on white, resized.

    1 channel: grey; 3: RGB; another count: the file's own bands when it has that many (RGBA: 4, no
    compositing), else a ValueError. Raises whatever PIL raises for a file that is not a readable image.
    """
    with Image.open(path) as opened:
        opened.draft("L" if channels == 1 else "RGB", (size, size))  # JPEG: decode at a reduced scale
        image = ImageOps.exif_transpose(opened)
        image.load()
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        image = _to_8bit(image)
    if channels not in (1, 3):
        return _own_bands(image, size, channels)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if channels == 1 else array


def equal_channels(path: str | os.PathLike[str], size: int = 64) -> bool:
    """An RGB file whose three channels are equal to JPEG's rounding: grey content saved as colour (scans)."""
    rgb = load_image(path, size, 3).astype(np.int16)
    return int(np.abs(rgb - rgb[:, :, :1]).max()) <= GREY_RGB


def _own_bands(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """An image of `channels` bands as they are (RGBA, CMYK: 4), resized; another count is a ValueError."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    bands = len(image.getbands())
    if bands != channels:
        raise ValueError(f"{bands} channels ({image.mode}), the competition reads {channels}")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def load_sample(path: str, size: int, channels: int) -> np.ndarray:
    """One sample of the table -> uint8 [size, size, channels]: its image file (load_image), or its
    channel files each read as grey and stacked in order. A missing channel file raises
    FileNotFoundError naming it and its channel."""
    files = sample_channels(path)
    if len(files) == 1:
        return load_image(files[0][1], size, channels)
    if len(files) != channels:
        raise ValueError(f"{len(files)} channel files for {channels} channels")
    layers = []
    for name, file in files:
        if not os.path.isfile(file):
            raise FileNotFoundError(f"{file}: channel '{name}' is missing")
        layers.append(load_image(file, size, 1))
    return np.concatenate(layers, axis=2)


def preview_rgb(image: np.ndarray) -> np.ndarray:
    """What a gallery shows of a uint8 HWC image: HW grey for 1 channel, else the first three as RGB
    (two channels: red and green, blue empty)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return image.reshape(image.shape[:2])
    if image.shape[2] == 2:
        return np.concatenate([image, np.zeros_like(image[:, :, :1])], axis=2)
    return image[:, :, :3]


# --- the cache --------------------------------------------------------------------------------


def _cache_key(paths: Sequence[str], size: int, channels: int) -> str:
    digest = hashlib.sha1(f"v{CACHE_VERSION} {size} {channels}\n".encode())
    for path in (file for sample in paths for file in sample_files(sample)):
        try:
            st = os.stat(path)
            digest.update(f"{path}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\t-\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class ImageCache:
    """Decoded images of a file list at one size: `images[index[path]]` is uint8 [H, W, C]."""

    file: Path
    paths: list[str]
    failed: dict[str, str]  # path -> why it could not be read
    size: int
    channels: int
    images: np.ndarray = field(repr=False)
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {p: i for i, p in enumerate(self.paths)}


def build_cache(paths: Sequence[str], size: int, channels: int, cache_dir: Path | None = None) -> ImageCache:
    """Decode every file once into cache_dir (or memory when None); reuse a cache already built.

    `decode` below is the only call that reads image files, so tests can count it.
    """
    paths = [str(p) for p in paths]
    if cache_dir is None:
        images, failed = _fill_memory(paths, size, channels)
        return ImageCache(Path(":memory:"), paths, failed, size, channels, images)
    cache_dir = Path(cache_dir)
    reap_temps(cache_dir)  # what a kill -9 left of an earlier build
    stem = f"{size}px-{channels}ch-{_cache_key(paths, size, channels)}"
    npy, meta = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
    if npy.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            images = np.load(npy, mmap_mode="r")
            if info.get("paths") == paths and images.shape == (len(paths), size, size, channels):
                return ImageCache(npy, paths, dict(info.get("failed", {})), size, channels, images)
        except (OSError, ValueError):
            pass  # unreadable: build it again
    failed = _write_cache(npy, paths, size, channels)
    write_json(meta, {"size": size, "channels": channels, "paths": paths, "failed": failed})
    return ImageCache(npy, paths, failed, size, channels, np.load(npy, mmap_mode="r"))


def _write_cache(npy: Path, paths: list[str], size: int, channels: int) -> dict[str, str]:
    """The .npy written through a file handle, its blocks reserved first: a full disk is a one-line
    error before any decoding (or an ENOSPC one during the writes), never the SIGBUS of a memory map
    over a sparse file; the temp file is gone either way."""
    shape = (len(paths), size, size, channels)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    nbytes = header.tell() + int(np.prod(shape))
    what = f"the image cache ({len(paths)} images at {size} px)"
    ensure_free_space(npy.parent, nbytes + sum(len(p) + 8 for p in paths), what)  # + its .json file list
    with atomic_path(npy) as tmp, open(tmp, "r+b") as fh:
        _reserve(fh, nbytes, npy.parent, what)
        fh.write(header.getvalue())
        failed = _fill(paths, size, channels, fh.write)
        fh.flush()
        os.fsync(fh.fileno())
    return failed


def _reserve(fh: Any, nbytes: int, folder: Path, what: str) -> None:
    """Allocate the file's blocks now (posix_fallocate), so the disk says no before the writes do."""
    if not hasattr(os, "posix_fallocate") or nbytes == 0:
        return
    try:
        os.posix_fallocate(fh.fileno(), 0, nbytes)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full_error(folder, what) from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise  # a filesystem that cannot reserve blocks still reports a full disk on write


def decode(path: str, size: int, channels: int) -> np.ndarray:
    """Read one sample for the cache (a seam for tests that count decodes)."""
    return load_sample(path, size, channels)


CHUNK_BYTES = 16 * 2**20  # decoded rows per write; two chunks are in memory while a cache is built


def _fill_memory(paths: list[str], size: int, channels: int) -> tuple[np.ndarray, dict[str, str]]:
    images = np.empty((len(paths), size, size, channels), np.uint8)
    done = 0

    def keep(chunk: np.ndarray) -> None:
        nonlocal done
        images[done : done + len(chunk)] = chunk
        done += len(chunk)

    return images, _fill(paths, size, channels, keep)


def _fill(paths: list[str], size: int, channels: int, write: Callable[[np.ndarray], object]) -> dict[str, str]:
    """Decode every file in parallel (threads: PIL releases the GIL), handing `write` the rows in order,
    a chunk at a time; a file that cannot be read is a row of zeros and an entry of the result."""
    n = len(paths)
    rows = max(1, min(n, CHUNK_BYTES // (size * size * channels)))
    buffers = [np.empty((rows, size, size, channels), np.uint8) for _ in range(1 if n <= rows else 2)]

    def work(i: int) -> tuple[int, str | None]:
        slot = buffers[(i // rows) % len(buffers)][i % rows]
        try:
            slot[...] = decode(paths[i], size, channels)
            return i, None
        except Exception as exc:  # any unreadable file: left out, reported
            slot[...] = 0
            return i, f"{type(exc).__name__}: {exc}".splitlines()[0]

    failed: dict[str, str] = {}
    results = _in_chunks(work, n, rows, lambda start, end: write(buffers[(start // rows) % len(buffers)][: end - start]))
    for i, why in console.progress(results, n, f"Caching {n} images at {size} px"):
        if why is not None:
            failed[paths[i]] = why
    return failed


def _in_chunks(
    work: Callable[[int], tuple[int, str | None]], n: int, rows: int, done: Callable[[int, int], object]
) -> Iterator[tuple[int, str | None]]:
    """work(0..n-1) on a thread pool, results in order; done(start, end) after each chunk of `rows`.

    Chunk k+1 is queued before chunk k is awaited, so the threads never wait for a write; chunk k+2
    only after done() has taken chunk k's buffer. On any exception (KeyboardInterrupt too) queued
    work is cancelled.
    """
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    try:
        pending = pool.map(work, range(0, min(rows, n)))
        for start in range(0, n, rows):
            end = min(start + rows, n)
            following = pool.map(work, range(end, min(end + rows, n)))
            yield from pending
            done(start, end)
            pending = following
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def warn_failed(failed: dict[str, str], rows: pd.DataFrame) -> None:
    """One warning listing the images of `rows` that could not be read."""
    bad = rows.loc[rows["path"].isin(failed), ["id", "path"]]
    if bad.empty:
        return
    names = console.shortlist(f"{r.id} ({failed[r.path]})" for r in bad.itertuples())
    console.warn(f"{len(bad)} images could not be read: {names}")
