"""Batches for paddle: a Dataset over canonical-table rows, the seeded sampler, the DataLoaders.

Per item: uint8 from the image cache (data.images) -> albumentations train transform (none for
evaluation). The batch stays uint8 to the device (a quarter of float32's bytes through the loader's
shared memory and the copy to a GPU, from pinned host memory there) and is normalized there by
paddle ops (`DeviceNormalize`: float32 NCHW, (x - 255 mean) / (255 std)). Randomness is seeded from
(seed, epoch, worker, rank), so a run is repeatable and a resumed run replays the same epochs.

With several processes (paddle.distributed) each takes its shard of the same seeded order of an
epoch (`EpochSampler`), so the global batch of a step is the one a single process would draw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import paddle
import pandas as pd

from kaggle_flow.data.images import ImageCache, build_cache, warn_failed
from kaggle_flow.machine import signals_held
from kaggle_flow.target import TARGETS, Target

if TYPE_CHECKING:
    from kaggle_flow.config import RunConfig

DEFAULT_WORKERS = 0  # DataLoader worker processes: on 2 CPU cores the model, not the loading, is the
# bottleneck (mnist, smallcnn: 287 img/s with 0 workers, 299 with 2), so the main process loads


# --- dataset ----------------------------------------------------------------------------------


class DeviceNormalize:
    """uint8 NHWC batch -> float32 NCHW, (x - 255 mean) / (255 std), as paddle ops where the batch is.

    Once per batch on the device, not once per image on the host. Channels-last stays a host layout:
    paddle sets NHWC per layer (`data_format`), not per model, so the batch is transposed to NCHW here.
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
    """Rows of the canonical table over an ImageCache; items are (uint8 HWC, the label as `target`
    encodes it: an int64 class index, or a float32 multi-hot row of `num_classes`), normalized later
    on the device (`mean`, `std`: the loader's `DeviceNormalize`).

    Rows whose image failed to load are dropped (see `kept`: positions of the rows kept). A test row
    has label -1 (a row of zeros for a multi-label target). With `targets` (float32 [len(rows), K]: soft targets, `--pseudo-soft`) an item's
    second value is its row of them instead of the label; the training step reads either.
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
        targets: np.ndarray | None = None,
        target: Target = TARGETS["single"],
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        index = cache.index
        usable = rows["path"].map(lambda p: p in index and p not in cache.failed).to_numpy(dtype=bool)
        if report:
            warn_failed(cache.failed, rows)
        self.kept = np.flatnonzero(usable)
        kept = rows.iloc[self.kept]
        self.slots = np.asarray([index[p] for p in kept["path"]], dtype=np.int64)
        self.labels = target.item_labels(kept, num_classes)
        self.ids = kept["id"].tolist()
        self.targets = None if targets is None else np.asarray(targets, np.float32)[self.kept]
        self.cache = cache
        self.transform = transform
        self.mean, self.std = list(mean), list(std)
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

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(self.image(i)), self.labels[i] if self.targets is None else self.targets[i]


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

    Iterating gives (float32 NCHW normalized images, the labels as the dataset gives them) on the device: the uint8 batches
    go through `normalize` there.
    """

    loader: paddle.io.DataLoader
    dataset: ImageDataset
    sampler: EpochSampler
    workers: int
    normalize: DeviceNormalize

    def set_epoch(self, epoch: int) -> None:
        self.dataset.epoch = epoch
        self.sampler.epoch = epoch
        if self.workers == 0:
            self.dataset.reseed(0)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return self._normalized(iter(self.loader))

    def _normalized(self, batches: Iterator[Any]) -> Iterator[Any]:
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
) -> Loader:
    """A paddle DataLoader over this process's shard of a seeded order.

    `drop_last` drops the last partial global batch (batch_size * world), which also avoids a
    1-image batch for BatchNorm; an evaluation loader (no drop) is sharded unpadded, so its shards
    put back together are every row once. uint8 batches, normalized on the device.
    Batches are prefetched to the device (`use_buffer_reader`), through pinned host memory on a GPU.
    """
    n, global_batch = len(dataset), batch_size * world
    keep = n // global_batch * global_batch if drop_last else None
    sampler = EpochSampler(n, seed, shuffle, rank=rank, world=world, keep=keep, pad=shuffle and not drop_last)
    batches = paddle.io.BatchSampler(sampler=sampler, batch_size=batch_size, drop_last=drop_last)
    dataset.rank = rank
    loader = paddle.io.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        worker_init_fn=_worker_init if workers > 0 else None,
        use_shared_memory=workers > 0,
        use_buffer_reader=True,
    )
    loader.pin_memory = _on_gpu()  # paddle's default in dynamic mode; said here, since the GPU path relies on it
    return Loader(loader, dataset, sampler, workers, DeviceNormalize(dataset.mean, dataset.std))


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
    dataset = ImageDataset(rows, cache, mean=config.mean, std=config.std, transform=view, report=report,
                           target=TARGETS[config.target], num_classes=config.num_classes)
    return make_loader(dataset, batch_size=batch_size, shuffle=False, workers=workers)
