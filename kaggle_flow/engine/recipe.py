"""The automatic recipe: image size, model, batch size and epochs chosen from the data and the machine.

A built-in competition leaves these four `auto`; any flag or TOML value overrides its own. Each
choice comes with a one-line reason, printed before training and saved in config.json:

    size    the median short side of the training images, capped by the device (64 px on a CPU,
            224 on a GPU) and at least the model's minimum; 224 px for ImageNet weights on a GPU
    model   RGB photos (short side >= 64 px) with ImageNet weights at hand (in paddle's cache, or the
            network answers and --no-download was not given): a pretrained model, resnet50 on a GPU,
            resnet18 on a CPU (a smaller one within max_params), with Adam 3e-4, one frozen-backbone
            epoch and ImageNet's mean/std (`transfer_values`). Otherwise, on a CPU, a small CNN for
            tiny images (short side under 64 px, where the family's stem keeps the full
            resolution: slower, and it learned digit composites more slowly per epoch): smallcnn,
            smallcnn3 from 48 px (a third pooled stage: each output sees 50 px, not 30), else the
            from-scratch family: on a CPU resnet-t below 2,000 training images (more epochs fit the
            time), else resnet-s; on a GPU resnet-m (resnet-l from 20,000 images); the largest that
            fits max_params
    batch   64 on a CPU (32 for a few hundred images), 128 on a GPU (64 from 160 px)
    epochs  about 50,000 images seen (10-60 epochs); on a CPU, fewer when the training speed
            measured for this model and size says the run would pass CPU_BUDGET_S. The speed is
            measured once per model, size, batch and thread count and kept in runs/COMP/speeds.json:
            a busy moment would otherwise choose fewer epochs, and two runs meant to differ in one
            flag would differ in their epochs too. Delete the file to measure again.

`Facts` holds what the choices read: `measure` takes it from `flow eda`'s images.csv when it is
there, else from the headers of a sample of the training images (no pixel decoded).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kaggle_flow import models
from kaggle_flow.engine.speed import train_speed
from kaggle_flow.errors import DataError, DiskFullError
from kaggle_flow.explore.scan import scan_image
from kaggle_flow.fileio import write_json
from kaggle_flow.machine import cpu_threads
from kaggle_flow.target import TARGETS

if TYPE_CHECKING:
    from kaggle_flow.workspace import Workspace

AUTO = "auto"
AUTO_KEYS = ("image_size", "model", "batch_size", "epochs")
CPU_SIZE, GPU_SIZE, MIN_SIZE = 64, 224, 16  # px
IMAGES_SEEN = 50_000  # training images over the run (epochs x images per epoch)
EPOCHS = (10, 60)
MIN_CPU_EPOCHS = 3  # under the CPU time budget: fewer than this and a cosine schedule barely anneals
CPU_BUDGET_S = 3.5 * 60  # s of training steps: a CPU baseline takes minutes (validation and set-up on top)
SMALL_DATA = 2_000  # training images below which the CPU model is the tiny preset (more epochs in the budget)
TINY_SIDE = 64  # px: a median short side under which a CPU trains a small CNN
TINY_MODELS = (("smallcnn3", 48), ("smallcnn", 0))  # (model, the median short side from which it is picked), preferred first
FAMILY = ("resnet-t", "resnet-s", "resnet-m", "resnet-l")  # smallest first
PHOTO_SIDE = 64  # px: a median short side from which RGB images are taken for photos, as ImageNet's are
PRETRAINED = {  # the pretrained models the recipe picks from, preferred first: the first within max_params with weights
    "gpu": ("resnet50", "resnet34", "resnet18", "mobilenet_v2", "mobilenet_v3_small"),
    "cpu": ("resnet18", "mobilenet_v2", "shufflenet_v2", "mobilenet_v3_small"),
}
TRANSFER_LR = 3e-4  # Adam's rate for fine-tuning ImageNet weights (the courses' rate)
TRANSFER_FREEZE_EPOCHS = 1  # epochs of a frozen backbone first: the new head settles before the backbone moves
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@dataclass(frozen=True)
class ImagenetAtHand:
    """Where ImageNet weights could come from: paddle's cache, or a download when allowed and online."""

    cached: tuple[str, ...]  # models whose weights file is in the cache
    folder: Path  # the cache
    download: bool  # the user allows a download (not --no-download)
    online: Callable[[], bool] = field(default=models.online, repr=False)  # asked only when a download would be needed

    @classmethod
    def here(cls, *, download: bool = True) -> ImagenetAtHand:
        names = sorted({n for names in PRETRAINED.values() for n in names})
        return cls(tuple(n for n in names if models.cached_imagenet(n) is not None), models.weights_home(), download)


@dataclass(frozen=True)
class Facts:
    """What the automatic recipe reads about the data and the machine."""

    n_train: int  # training images of the fold (before label shuffling)
    largest_class: int  # images of the largest class: label shuffling pads every class to it
    median_width: int
    median_height: int
    place: str  # "cpu" or "gpu"
    cores: int
    source: str  # where the image sizes came from
    speeds: Path | None = None  # the measured training speeds kept for later runs (runs/COMP/speeds.json)
    imagenet: ImagenetAtHand | None = None  # None: ImageNet weights not considered (a model given, --no-pretrained)

    @property
    def short_side(self) -> int:
        return min(self.median_width, self.median_height)


def measure(ws: Workspace, train_rows: pd.DataFrame, place: str, *, sample: int = 300) -> Facts:
    """The median training image size (eda's images.csv, else a header scan of a sample) and the machine."""
    sizes = _eda_sizes(ws, train_rows)
    source = f"`flow eda` ({ws.eda_dir() / 'images.csv'})"
    if sizes is None:
        paths = train_rows["path"].sample(min(sample, len(train_rows)), random_state=0) if len(train_rows) else []
        infos = [scan_image(p) for p in paths]
        sizes = np.array([(i.width, i.height) for i in infos if not i.problem and i.width], dtype=float).reshape(-1, 2)
        source = f"the headers of {len(paths)} training images"
    if not len(sizes):
        raise DataError(f"{ws.data_dir}: no readable training image to choose an image size from; give --size")
    width, height = np.median(sizes, axis=0)
    target, k = TARGETS[ws.comp.target], ws.comp.num_classes
    largest = int(target.counts(target.encode(train_rows, k), k).max()) if len(train_rows) else 0
    return Facts(len(train_rows), largest, int(width), int(height), place, cpu_threads(), source, ws.runs_dir / "speeds.json")


def _eda_sizes(ws: Workspace, train_rows: pd.DataFrame) -> np.ndarray | None:
    file = ws.eda_dir() / "images.csv"
    if not file.is_file():
        return None
    try:
        images = pd.read_csv(file, usecols=["id", "width", "height", "problem"], dtype={"id": str}, keep_default_na=False)
    except (OSError, ValueError):
        return None
    rows = images[images["id"].isin(set(train_rows["id"])) & (images["problem"] == "")]
    return rows[["width", "height"]].to_numpy(dtype=float) if len(rows) else None


def choose_size(facts: Facts, min_size: int = MIN_SIZE) -> tuple[int, str]:
    cap = CPU_SIZE if facts.place == "cpu" else GPU_SIZE
    size = max(min_size, MIN_SIZE, min(cap, facts.short_side))
    where = f"median image {facts.median_width}x{facts.median_height} px ({facts.source})"
    capped = f", capped at {cap} on a {facts.place.upper()}" if facts.short_side > cap else ""
    raised = f", raised to the {size} px minimum" if facts.short_side < size else ""
    return size, f"{size} px: {where}{capped}{raised}"


def choose_model(facts: Facts, max_params: int | None, num_classes: int, channels: int) -> tuple[str, str]:
    if facts.place == "cpu" and facts.short_side < TINY_SIDE:
        limit = ""  # said once a model the size asks for is over max_params
        for name, side in TINY_MODELS:
            params = models.param_count(name, num_classes, channels)
            if facts.short_side < side:
                continue
            if max_params is None or params <= max_params:
                return name, (f"{name}: CPU, tiny images (median short side {facts.short_side} px, under {TINY_SIDE}), "
                              f"{params / 1e6:.1f} M parameters{limit}")
            limit = f", within max_params {max_params:,}"
        raise DataError(f"max_params {max_params:,}: even {name} has {params:,} parameters; give --model")
    if facts.place == "gpu":
        wanted = "resnet-l" if facts.n_train >= 20_000 else "resnet-m"
    else:
        wanted = "resnet-t" if facts.n_train < SMALL_DATA else "resnet-s"
    for name in reversed(FAMILY[: FAMILY.index(wanted) + 1]):
        params = models.param_count(name, num_classes, channels)
        if max_params is None or params <= max_params:
            limit = f", within max_params {max_params:,}" if max_params is not None else ""
            return name, f"{name}: {facts.place.upper()}, {facts.n_train:,} training images, {params / 1e6:.1f} M parameters{limit}"
    smallest = models.param_count(FAMILY[0], num_classes, channels)
    raise DataError(f"max_params {max_params:,}: even {FAMILY[0]} has {smallest:,} parameters; give --model")


def photos(facts: Facts, channels: int) -> bool:
    """RGB images whose median short side is at least PHOTO_SIDE: what ImageNet weights were trained on."""
    return channels == 3 and facts.short_side >= PHOTO_SIDE


def choose_pretrained(facts: Facts, max_params: int | None, num_classes: int, channels: int, *,
                      forced: bool = False) -> tuple[str | None, str]:
    """A pretrained model for RGB photos with ImageNet weights at hand, and its reason; (None, note) otherwise.

    `forced` (--pretrained with the model auto): the first candidate within max_params, weights at hand
    or not. The note is empty when no note is due (not photos, or max_params too small for any candidate).
    """
    at_hand = facts.imagenet
    if at_hand is None or not (forced or photos(facts, channels)):
        return None, ""
    fits = [n for n in PRETRAINED[facts.place] if max_params is None or models.param_count(n, num_classes, channels) <= max_params]
    if not fits:
        return None, ""
    cached = [n for n in fits if n in at_hand.cached]
    name = cached[0] if cached else fits[0]
    if not cached and not forced and not (at_hand.download and at_hand.online()):
        return None, (f"no ImageNet weights for {name} here (looked in {at_hand.folder}); training from scratch; "
                      f"`flow weights get {name}` where there is a network")
    params = models.param_count(name, num_classes, channels)
    limit = f", within max_params {max_params:,}" if max_params is not None else ""
    source = f"in {at_hand.folder}" if cached else "downloaded on first use"
    images = (f"RGB photos (median {facts.median_width}x{facts.median_height} px, short side >= {PHOTO_SIDE})"
              if photos(facts, channels) else "--pretrained")
    return name, f"{name}, ImageNet weights ({source}): {facts.place.upper()}, {images}, {params / 1e6:.1f} M parameters{limit}"


def choose_batch(facts: Facts, size: int) -> tuple[int, str]:
    if facts.place == "gpu":
        batch = 64 if size >= 160 else 128
        return batch, f"{batch}: GPU at {size} px"
    batch = 32 if facts.n_train < 640 else 64
    return batch, f"{batch}: CPU, {facts.n_train:,} training images"


def choose_epochs(facts: Facts, images_per_s: float | None, *, per_epoch: int | None = None, when: str = "") -> tuple[int, str]:
    """`per_epoch`: images in an epoch (more than n_train under label shuffling); `when`: where and
    when an earlier run measured `images_per_s`, for the reason line."""
    lo, hi = EPOCHS
    per_epoch = per_epoch or facts.n_train
    epochs = min(hi, max(lo, round(IMAGES_SEEN / max(per_epoch, 1))))
    reason = f"{epochs}: about {IMAGES_SEEN:,} images seen ({per_epoch:,} per epoch)"
    if facts.place == "cpu" and images_per_s:
        fits = math.floor(CPU_BUDGET_S * images_per_s / max(per_epoch, 1))
        if fits < epochs:
            epochs = max(MIN_CPU_EPOCHS, fits)
            minutes = epochs * per_epoch / images_per_s / 60  # over the budget when even MIN_CPU_EPOCHS do not fit
            fewest = ", the fewest the recipe trains" if fits < MIN_CPU_EPOCHS else ""
            reason = f"{epochs}{fewest}: about {minutes:.1f} min at the {images_per_s:.0f} images/s measured for this model and size{when}"
    return epochs, reason


@dataclass(frozen=True)
class Choices:
    """The four values the automatic recipe decides: a value or `auto` each before `resolve`, concrete after.

    `reasons` holds, for each value `resolve` chose, the line that says why.
    """

    model: str
    image_size: int | str
    batch_size: int | str
    epochs: int | str
    reasons: dict[str, str] = field(default_factory=dict)
    pretrained: bool = False  # the model was chosen to start from ImageNet weights
    note: str = ""  # a line to print beside the choices (no ImageNet weights here)

    def values(self) -> dict[str, int | str]:
        return {k: getattr(self, k) for k in AUTO_KEYS}

    @property
    def auto(self) -> list[str]:
        """The keys still `auto`, in AUTO_KEYS order."""
        return [k for k in AUTO_KEYS if getattr(self, k) == AUTO]

    def with_stand_ins(self) -> Choices:
        """Every `auto` replaced by a stand-in, only so the other options can be checked before training."""
        return replace(self, **{k: getattr(STAND_INS, k) for k in self.auto})


STAND_INS = Choices(model="smallcnn", image_size=32, batch_size=32, epochs=60)


def resolve(wanted: Choices, facts: Facts | None, *, num_classes: int, channels: int, max_params: int | None,
            balance: bool = False, pretrained: bool | None = None) -> Choices:
    """`wanted` with every `auto` replaced by a choice from `facts`, and the reason for each choice made.

    `balance`: label shuffling is on, so an epoch holds every class padded to the largest.
    `pretrained`: --pretrained (a pretrained model whatever the data) or --no-pretrained (the family).
    """
    if not wanted.auto:
        return wanted
    if facts is None:
        raise DataError(f"{', '.join(wanted.auto)} are 'auto' but nothing was measured to choose them from")
    c, reasons = wanted, {}
    if c.model == AUTO:
        c, reasons["model"] = _auto_model(c, facts, max_params, num_classes, channels, pretrained)
    if c.image_size == AUTO:
        size, reasons["image_size"] = choose_size(facts, models.MODELS[c.model].min_size)
        if c.pretrained and facts.place == "gpu":
            size, reasons["image_size"] = GPU_SIZE, f"{GPU_SIZE} px: ImageNet's size, on a GPU"
        c = replace(c, image_size=size)
    if c.batch_size == AUTO:
        batch, reasons["batch_size"] = choose_batch(facts, int(c.image_size))
        c = replace(c, batch_size=batch)
    if c.epochs == AUTO:
        speed, when = _cpu_speed(c, facts, num_classes, channels) if facts.place == "cpu" else (None, "")
        per_epoch = num_classes * facts.largest_class if balance else facts.n_train
        epochs, reasons["epochs"] = choose_epochs(facts, speed, per_epoch=per_epoch, when=when)
        c = replace(c, epochs=epochs)
    return replace(c, reasons={**wanted.reasons, **reasons})


def _auto_model(c: Choices, facts: Facts, max_params: int | None, num_classes: int, channels: int,
                pretrained: bool | None) -> tuple[Choices, str]:
    """The model: a pretrained one where ImageNet weights suit the data and are at hand, else the family."""
    name, why = (None, "") if pretrained is False else choose_pretrained(facts, max_params, num_classes, channels,
                                                                        forced=bool(pretrained))
    if name is not None:
        return replace(c, model=name, pretrained=True), why
    model, reason = choose_model(facts, max_params, num_classes, channels)
    return replace(c, model=model, note=why), reason


def transfer_values(chosen: Choices, given: dict[str, Any], channels: int) -> tuple[dict[str, Any], dict[str, str]]:
    """What a start from ImageNet weights brings along, where no flag says otherwise, and the reason of each.

    Adam at 3e-4 (the courses' fine-tuning rate: 3e-3 would wreck the pretrained filters), one epoch
    of a frozen backbone first (the new head settles before its gradients reach the backbone), and
    ImageNet's mean/std (the statistics the weights were trained with).
    """
    if not chosen.pretrained:
        return {}, {}
    values: dict[str, Any] = {"pretrained": True}
    reasons = {}
    if "optimizer" not in given:
        values["optimizer"] = "adam"
    if "lr" not in given:
        values["lr"], reasons["lr"] = TRANSFER_LR, f"{TRANSFER_LR:g}: fine-tuning ImageNet weights ({given.get('optimizer', 'adam')})"
    if "freeze_epochs" not in given and not given.get("freeze"):
        values["freeze_epochs"] = TRANSFER_FREEZE_EPOCHS
        reasons["freeze"] = f"{TRANSFER_FREEZE_EPOCHS} epoch: the backbone frozen while the new head settles, then every layer"
    if channels == 3:
        values["mean"], values["std"] = IMAGENET_MEAN, IMAGENET_STD
    return values, reasons


def _cpu_speed(c: Choices, facts: Facts, num_classes: int, channels: int) -> tuple[float | None, str]:
    """Training images/s of the chosen model, size and batch on this CPU: kept from an earlier run, else measured."""
    key = f"{c.model} {c.image_size}px batch {c.batch_size} {channels}x{num_classes} {facts.cores} threads"
    return remembered_speed(facts.speeds, key, lambda: train_speed(
        c.model, size=int(c.image_size), batch_size=int(c.batch_size),
        num_classes=num_classes, in_channels=channels, seconds=1.5,
    ).images_per_s)


def remembered_speed(file: Path | None, key: str, measure: Callable[[], float | None]) -> tuple[float | None, str]:
    """The training speed kept in `file` under `key`, else `measure()` (kept there for later runs).

    Returns the speed and, when it was kept from an earlier run, " on DATE (FILE)" for the reason
    line. An unreadable file is measured over; one that cannot be written is left as it is.
    """
    kept: dict[str, Any] = {}
    if file is not None and file.is_file():
        try:
            kept = json.loads(file.read_text())
            entry = kept[key]
            speed = float(entry["images_per_s"])
            if math.isfinite(speed) and speed > 0:
                return speed, f" on {entry['measured']} ({file})"
        except (OSError, ValueError, KeyError, TypeError):
            kept = kept if isinstance(kept, dict) else {}
    speed = measure()
    if file is not None and speed is not None:
        kept[key] = {"images_per_s": round(speed, 1), "measured": time.strftime("%Y-%m-%d %H:%M")}
        try:
            write_json(file, kept)
        except (OSError, DiskFullError):
            pass  # a read-only or full runs folder: training says so itself; the speed is measured next time
    return speed, ""
