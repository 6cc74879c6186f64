"""One run's images: a uint8 cache per training size, the validation loader, a training loader per epoch.

The caches are keyed by every labelled row (`build_caches`), so the folds of a cross-validation run
and the processes of a data-parallel one share them; the launching process builds them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kaggle_flow.config import RunConfig
from kaggle_flow.data import augment
from kaggle_flow.data.images import ImageCache, build_cache, warn_failed
from kaggle_flow.data.loader import ImageDataset, Loader, make_loader
from kaggle_flow.errors import FlowError
from kaggle_flow.explore.balance import label_shuffle
from kaggle_flow.pseudo import soft_targets
from kaggle_flow.target import TARGETS, Target

if TYPE_CHECKING:
    from kaggle_flow.runs import Run


@dataclass
class FoldData:
    """The images of one run: a cache per size, the validation loader, a training loader per epoch."""

    config: RunConfig
    train_rows: pd.DataFrame
    val_rows: pd.DataFrame
    caches: dict[int, ImageCache]
    val_loader: Loader | None  # None for a full refit: nothing is held out (this process's shard)
    rank: int = 0  # this process and how many train together (paddle.distributed)
    world: int = 1

    @property
    def target(self) -> Target:
        return TARGETS[self.config.target]

    @property
    def val_labels(self) -> np.ndarray:
        return self.target.encode(self.val_rows, self.config.num_classes)

    @property
    def train_labels(self) -> np.ndarray:
        return self.target.encode(self.train_rows, self.config.num_classes)

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.world

    @property
    def steps_per_epoch(self) -> int:
        n, batch = len(self.epoch_rows(0)), self.global_batch
        return n // batch if n > batch else 1  # drop_last only when there is more than one global batch

    def whole_val_loader(self) -> Loader | None:
        """Every validation row, unsharded: rank 0 evaluates the best model on it alone, at the end."""
        if self.val_loader is None or self.world == 1:
            return self.val_loader
        batch = self.val_loader.loader.batch_sampler.batch_size
        return make_loader(self.val_loader.dataset, batch_size=batch, shuffle=False, workers=0)

    def epoch_rows(self, epoch: int) -> pd.DataFrame:
        """The epoch's training rows: label shuffling draws them afresh each epoch."""
        return label_shuffle(self.train_rows, seed=self.config.seed + epoch) if self.config.balance else self.train_rows

    def train_loader(self, epoch: int, size: int) -> Loader:
        c = self.config
        transform = augment.build_train_transform(c.preset, size, c.channels, erasing=c.erasing, cutout=c.cutout, gridmask=c.gridmask)
        rows = self.epoch_rows(epoch)
        targets = soft_targets(rows, c.num_classes) if c.pseudo_soft else None  # --pseudo-soft: the teacher's probabilities
        data = ImageDataset(rows, self.caches[size], mean=c.mean, std=c.std, transform=transform, seed=c.seed, report=False,
                            targets=targets, target=self.target, num_classes=c.num_classes)
        loader = make_loader(
            data, batch_size=c.batch_size, shuffle=True, seed=c.seed, workers=c.workers, drop_last=len(rows) > self.global_batch,
            rank=self.rank, world=self.world,
        )
        loader.set_epoch(epoch)
        return loader


def build_caches(config: RunConfig, all_rows: pd.DataFrame, cache_dir: Path) -> dict[int, ImageCache]:
    """The image cache of every size the run trains at (`all_rows`, every labelled row, fixes the
    file list, so every fold shares one cache per size). Built once, then found by every process."""
    paths = all_rows["path"].tolist()
    sizes = sorted(set(config.epoch_sizes()) | {config.image_size})
    return {s: build_cache(paths, s, config.channels, cache_dir) for s in sizes}


def prepare_data(
    config: RunConfig, run: Run, train_rows: pd.DataFrame, val_rows: pd.DataFrame, all_rows: pd.DataFrame, *,
    rank: int = 0, world: int = 1, report: bool = True,
) -> FoldData:
    """Decode every image once per size into the cache; unreadable ones are left out here, once."""
    caches = build_caches(config, all_rows, run.cache_dir)
    failed = {p: why for c in caches.values() for p, why in c.failed.items()}
    if failed:
        if report:
            warn_failed(failed, pd.concat([train_rows, val_rows]))
        train_rows = train_rows[~train_rows["path"].isin(failed)].reset_index(drop=True)
        val_rows = val_rows[~val_rows["path"].isin(failed)].reset_index(drop=True)
    if train_rows.empty or (val_rows.empty and not config.full):
        raise FlowError(f"fold {config.fold}: no {'training' if train_rows.empty else 'validation'} images left")
    val_loader = None
    if not config.full:
        val_data = ImageDataset(val_rows, caches[config.image_size], mean=config.mean, std=config.std, report=False,
                                target=TARGETS[config.target], num_classes=config.num_classes)
        val_loader = make_loader(val_data, batch_size=max(config.batch_size, 128), shuffle=False, workers=0,
                                 rank=rank, world=world)
    return FoldData(config, train_rows, val_rows, caches, val_loader, rank, world)
