"""Images for paddle: a uint8 cache on disk, a Dataset over canonical-table rows, the DataLoaders.

Decoding a JPEG costs far more than anything done to it afterwards, so every image is decoded and
resized once, to the training size, into a uint8 array on disk (a numpy .npy opened as a memmap):

    runs/COMP/cache/{size}px-{channels}ch-{key}.npy    [N, size, size, channels] uint8
    runs/COMP/cache/{size}px-{channels}ch-{key}.json   the file list and the images that failed

The key hashes the files (path, byte size, modification time), the size and the channels, so a
changed file list or size builds a new cache; an unchanged one is reused by the next run. The cache
is filled in parallel (threads: PIL releases the GIL while decoding and resizing) before epoch 1, so
no epoch decodes a file. An image that cannot be read is left out with a warning that lists it.
It is written through a file handle, its blocks reserved first and the free space checked before
that: on a full disk, one line, never the SIGBUS a memory map over a sparse file would get.

Per item: uint8 from the cache -> albumentations train transform (none for evaluation). The batch
stays uint8 to the device (a quarter of float32's bytes through the loader's shared memory and the
copy to a GPU, from pinned host memory there) and is normalized there by paddle ops
(`DeviceNormalize`: float32 NCHW, (x - 255 mean) / (255 std)); `normalize_on="host"` normalizes
each item in numpy instead, the same numbers. Randomness is seeded from (seed, epoch, worker, rank),
so a run is repeatable and a resumed run replays the same epochs.

With several processes (paddle.distributed) each takes its shard of the same seeded order of an
epoch (`EpochSampler`), so the global batch of a step is the one a single process would draw.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import paddle
import pandas as pd
from PIL import Image, ImageOps

from kaggle_flow import console
from kaggle_flow.fileio import atomic_path, disk_full_error, ensure_free_space, reap_temps, write_json
from kaggle_flow.machine import signals_held

if TYPE_CHECKING:
    from kaggle_flow.config import RunConfig

CACHE_VERSION = 1  # bump when the decoding below changes, so old caches are not reused
DEFAULT_WORKERS = 0  # DataLoader worker processes: on 2 CPU cores the model, not the loading, is the
# bottleneck (mnist, smallcnn: 287 img/s with 0 workers, 299 with 2), so the main process loads


# --- decoding ---------------------------------------------------------------------------------


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey images scaled to 0..255 (PIL's convert would clip them)."""
    array = np.asarray(image)
    top = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
    if image.mode == "F":
        top = max(float(array.max(initial=0)), 1.0) if array.max(initial=0) > 1.0 else 1.0
    return Image.fromarray(np.clip(array.astype(np.float64) * (255.0 / top), 0, 255).astype(np.uint8), "L")


def load_image(path: str | os.PathLike[str], size: int, channels: int) -> np.ndarray:
    """One image file -> uint8 [size, size, channels]: EXIF-rotated, alpha on white, resized.

    Raises whatever PIL raises for a file that is not a readable image.
    """
    with Image.open(path) as opened:
        opened.draft("L" if channels == 1 else "RGB", (size, size))  # JPEG: decode at a reduced scale
        image = ImageOps.exif_transpose(opened)
        image.load()
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        image = _to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if channels == 1 else array


# --- the cache --------------------------------------------------------------------------------


def _cache_key(paths: Sequence[str], size: int, channels: int) -> str:
    digest = hashlib.sha1(f"v{CACHE_VERSION} {size} {channels}\n".encode())
    for path in paths:
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
    """Read one file for the cache (a seam for tests that count decodes)."""
    return load_image(path, size, channels)


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


# --- dataset ----------------------------------------------------------------------------------


def normalizer(mean: Sequence[float], std: Sequence[float]) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 HWC -> float32 CHW, (x - 255 mean) / (255 std)."""
    m = (np.asarray(mean, np.float32) * 255.0).reshape(-1, 1, 1)
    s = (np.asarray(std, np.float32) * 255.0).reshape(-1, 1, 1)

    def normalize(image: np.ndarray) -> np.ndarray:
        chw = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
        return (chw - m) / s

    return normalize


class DeviceNormalize:
    """uint8 NHWC batch -> float32 NCHW, (x - 255 mean) / (255 std), as paddle ops where the batch is.

    The same arithmetic as `normalizer` (float32 subtract, then divide), once per batch on the device
    instead of once per image in numpy. Channels-last stays a host layout: paddle sets NHWC per layer
    (`data_format`), not per model, so the batch is transposed to NCHW here.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = (np.asarray(mean, np.float32) * 255.0).reshape(1, -1, 1, 1)
        self.std = (np.asarray(std, np.float32) * 255.0).reshape(1, -1, 1, 1)
        self._tensors: tuple[paddle.Tensor, paddle.Tensor] | None = None

    def __call__(self, images: paddle.Tensor) -> paddle.Tensor:
        if self._tensors is None:  # made on first use, on the device paddle runs on by then
            self._tensors = (paddle.to_tensor(self.mean), paddle.to_tensor(self.std))
        mean, std = self._tensors
        return (images.astype("float32").transpose([0, 3, 1, 2]) - mean) / std


class ImageDataset(paddle.io.Dataset):
    """Rows of the canonical table over an ImageCache; items are (float32 CHW, int64 label), or with
    `uint8` set (by `make_loader`, for `DeviceNormalize`) (uint8 HWC, int64 label).

    Rows whose image failed to load are dropped (see `kept`: positions of the rows kept). A test row
    has label -1.
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        cache: ImageCache,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        transform: Any = None,
        seed: int = 0,
        report: bool = True,
    ) -> None:
        super().__init__()
        index = cache.index
        usable = rows["path"].map(lambda p: p in index and p not in cache.failed).to_numpy(dtype=bool)
        if report:
            warn_failed(cache.failed, rows)
        self.kept = np.flatnonzero(usable)
        kept = rows.iloc[self.kept]
        self.slots = np.asarray([index[p] for p in kept["path"]], dtype=np.int64)
        labels = kept["label"] if "label" in kept else pd.Series([-1] * len(kept))
        self.labels = pd.array(labels, dtype="Int64").fillna(-1).to_numpy(dtype=np.int64)
        self.ids = kept["id"].tolist()
        self.cache = cache
        self.transform = transform
        self.mean, self.std = list(mean), list(std)
        self.normalize = normalizer(mean, std)
        self.uint8 = False  # items left un-normalized, for the loader to normalize on the device
        self.seed = seed
        self.epoch = 0
        self.rank = 0  # the process of a data-parallel run: its own augmentation draws

    def __len__(self) -> int:
        return len(self.slots)

    def reseed(self, worker: int = 0) -> None:
        """Seed the augmentations from (seed, epoch, worker, rank): the same epoch gives the same images."""
        if self.transform is not None and hasattr(self.transform, "set_random_seed"):
            entropy = [self.seed, self.epoch, worker] + ([self.rank] if self.rank else [])  # rank 0: as with one process
            self.transform.set_random_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))

    def image(self, i: int) -> np.ndarray:
        """The augmented uint8 HWC image of item i."""
        image = np.asarray(self.cache.images[self.slots[i]])
        if self.transform is not None:
            image = self.transform(image=image)["image"]
            if image.ndim == 2:
                image = image[:, :, None]
        return image

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.int64]:
        image = self.image(i)
        return (np.ascontiguousarray(image) if self.uint8 else self.normalize(image)), self.labels[i]


class EpochSampler(paddle.io.Sampler):
    """A permutation drawn from (seed, epoch): the order of an epoch is the same on every run.

    With `world` processes, process `rank` takes every world-th item of that order from position
    `rank` on: the shards are disjoint, together they are the order, and a step's batches over all
    processes are the global batch one process would have drawn. The order is first cut to `keep`
    items (whole global batches, when the last partial one is dropped) or, with `pad`, wrapped
    round to a multiple of `world`, so that every process takes the same number of steps.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, *, rank: int = 0, world: int = 1,
                 keep: int | None = None, pad: bool = False) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0
        self.rank, self.world, self.keep, self.pad = rank, world, keep, pad

    def order(self) -> np.ndarray:
        """The epoch's order of every process, cut or padded; this process takes [rank::world]."""
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        if self.keep is not None:
            order = order[: self.keep]
        if self.pad and len(order) % self.world:
            order = np.resize(order, -(-len(order) // self.world) * self.world)  # wraps round to the start
        return order

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.order()[self.rank :: self.world].tolist())

    def __len__(self) -> int:
        total = self.n if self.keep is None else min(self.keep, self.n)
        if self.pad:
            total = -(-total // self.world) * self.world
        return len(range(self.rank, total, self.world))


def _worker_init(worker: int) -> None:
    info = paddle.io.get_worker_info()
    if info is not None and isinstance(info.dataset, ImageDataset):
        info.dataset.reseed(worker + 1)


@dataclass
class Loader:
    """A DataLoader and what it iterates, with `set_epoch` to be called before each epoch.

    Iterating gives (float32 NCHW normalized images, int64 labels) on the device, whichever side
    normalized them (`normalize`: the device-side step, None when the dataset did it).
    """

    loader: paddle.io.DataLoader
    dataset: ImageDataset
    sampler: EpochSampler
    workers: int
    normalize: DeviceNormalize | None = None

    def set_epoch(self, epoch: int) -> None:
        self.dataset.epoch = epoch
        self.sampler.epoch = epoch
        if self.workers == 0:
            self.dataset.reseed(0)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return self._normalized(iter(self.loader))

    def _normalized(self, batches: Iterator[Any]) -> Iterator[Any]:
        if self.normalize is None:
            return batches
        return ((self.normalize(images), labels) for images, labels in batches)

    @contextlib.contextmanager
    def batches(self) -> Iterator[Iterator[tuple[paddle.Tensor, paddle.Tensor]]]:
        """The batches of one pass; paddle's reader (its thread, or its worker processes) is stopped
        when the block ends, however it ends.

        Left to the garbage collector, a reader that Ctrl-C or SIGTERM abandoned mid-epoch can still
        be inside paddle's C++ code when the interpreter exits, and the process dies of SIGABRT
        ("terminate called without an active exception") after flow has reported the interruption.
        """
        # A reader thread interrupted while it starts could not be stopped: signals wait until it
        # runs. Not with worker processes: forked inside, they would keep the holding handlers.
        hold = signals_held() if self.workers == 0 else contextlib.nullcontext()
        it = None
        try:
            with hold:
                it = iter(self.loader)
            yield self._normalized(it)
        finally:
            shutdown = getattr(it, "_try_shutdown_all", None)  # paddle's own clean-up, 2.6 and 3.x
            if shutdown is not None:
                shutdown()

    def __len__(self) -> int:
        return len(self.loader)


def make_loader(
    dataset: ImageDataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    workers: int = DEFAULT_WORKERS,
    drop_last: bool = False,
    rank: int = 0,
    world: int = 1,
    on_device: bool = True,
) -> Loader:
    """A paddle DataLoader over this process's shard of a seeded order.

    `drop_last` drops the last partial global batch (batch_size * world), which also avoids a
    1-image batch for BatchNorm; an evaluation loader (no drop) is sharded unpadded, so its shards
    put back together are every row once. `on_device`: uint8 batches, normalized on the device.
    Batches are prefetched to the device (`use_buffer_reader`), through pinned host memory on a GPU.
    """
    n, global_batch = len(dataset), batch_size * world
    keep = n // global_batch * global_batch if drop_last else None
    sampler = EpochSampler(n, seed, shuffle, rank=rank, world=world, keep=keep, pad=shuffle and not drop_last)
    batches = paddle.io.BatchSampler(sampler=sampler, batch_size=batch_size, drop_last=drop_last)
    dataset.rank, dataset.uint8 = rank, on_device
    loader = paddle.io.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        worker_init_fn=_worker_init if workers > 0 else None,
        use_shared_memory=workers > 0,
        use_buffer_reader=True,
    )
    loader.pin_memory = _on_gpu()  # paddle's default in dynamic mode; said here, since the GPU path relies on it
    return Loader(loader, dataset, sampler, workers, DeviceNormalize(dataset.mean, dataset.std) if on_device else None)


def _on_gpu() -> bool:
    return "gpu" in str(paddle.get_device())


def eval_loader(
    rows: pd.DataFrame,
    config: RunConfig,
    batch_size: int = 128,
    cache_dir: Path | None = None,
    *,
    view: Any = None,
    workers: int = 0,
    report: bool = True,
) -> Loader:
    """Un-augmented, unshuffled batches of `rows` at the run's size, channels and normalization.

    `loader.dataset.kept` gives the positions in `rows` of the images that could be read; `view`
    (an albumentations transform, see augment.tta_views) is applied to every image, for test-time
    augmentation.
    """
    cache = build_cache(rows["path"].tolist(), config.image_size, config.channels, cache_dir)
    dataset = ImageDataset(rows, cache, mean=config.mean, std=config.std, transform=view, report=report)
    return make_loader(dataset, batch_size=batch_size, shuffle=False, workers=workers, on_device=True)
