"""Augmentation presets (albumentations): the training and test-time transforms, and their preview grid.

A preset is a named list of albumentations transforms for images already resized to the training size;
`build_train_transform` wraps it: resize -> preset -> optional random erasing / cutout / grid mask ->
uint8 HWC with the competition's channels. Normalization happens later, in the data loader.

    flow augment --list                 # every preset and its transforms
    flow augment mnist --preset affine  # a PNG grid of augmented training images
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np

from kaggle_flow.data.images import load_sample, preview_rgb
from kaggle_flow.errors import FlowError
from kaggle_flow.plotting import figure, save_png
from kaggle_flow.registry import Registry


@dataclass(frozen=True)
class Preset:
    """A named augmentation recipe; build(size) gives its transforms for size x size images."""

    name: str
    description: str
    build: Callable[[int], list]


def _none(size: int) -> list:
    return []


def _flip(size: int) -> list:
    return [A.HorizontalFlip(p=0.5)]


def _affine(size: int) -> list:
    return [A.Affine(translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), rotate=(-12, 12), shear=(-8, 8), p=0.9)]


def _light(size: int) -> list:
    return [
        A.HorizontalFlip(p=0.5),
        A.Affine(translate_percent=(-0.06, 0.06), scale=(0.95, 1.05), rotate=(-10, 10), p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.3),
    ]


def _medium(size: int) -> list:
    return [
        A.RandomResizedCrop(size=(size, size), scale=(0.6, 1.0), ratio=(0.8, 1.25), p=1.0),
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-15, 15), p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=10, p=0.3),
    ]


def _heavy(size: int) -> list:
    return [
        A.RandomResizedCrop(size=(size, size), scale=(0.4, 1.0), ratio=(0.75, 1.33), p=1.0),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.2),
        A.Affine(rotate=(-30, 30), shear=(-10, 10), p=0.7),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=0.7),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5), p=1.0), A.MotionBlur(blur_limit=(3, 5), p=1.0),
                 A.GaussNoise(std_range=(0.02, 0.08), p=1.0)], p=0.3),
    ]


PRESETS: Registry[Preset] = Registry("augmentation preset", [
        Preset("none", "No augmentation (resize only)", _none),
        Preset("flip", "Horizontal flip only", _flip),
        Preset("affine", "Shift, scale, rotate, shear; no flip (digits, text, anything with a handedness)", _affine),
        Preset("light", "Flip, a small affine, a little brightness/contrast", _light),
        Preset("medium", "Random resized crop, flip, rotate, brightness/contrast, hue/saturation", _medium),
        Preset("heavy", "Strong crop, flips, rotate/shear, colour jitter, blur or noise (big data, long runs)", _heavy),
])

# Transforms that only change colour (hue, saturation: RGB's): left out for any count of channels but 3.
PREVIEW_SIZE = 128  # px: `flow augment` of a competition whose image size is auto (chosen only when training)
_COLOUR_ONLY = (A.HueSaturationValue, A.RGBShift, A.ChannelShuffle, A.ToGray, A.ToSepia)


# --- description -----------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    if isinstance(value, dict):
        parts = list(value.values())
        if parts and all(v == parts[0] for v in parts):
            return _fmt(parts[0])  # the same range for x and y
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return repr(value)


def describe_transform(t: Any) -> str:
    """`Name(arg=value, ..., p=P)` showing only the arguments that differ from their defaults."""
    if isinstance(t, (A.OneOf, A.SomeOf)):
        inner = " | ".join(describe_transform(c) for c in t.transforms)
        return f"{type(t).__name__}[{inner}](p={_fmt(float(t.p))})"
    args = t.get_transform_init_args()
    defaults = {
        k: v.default for k, v in inspect.signature(type(t)).parameters.items() if v.default is not inspect.Parameter.empty
    }
    shown = []
    for key, value in args.items():
        if key in ("p", "mask_interpolation", "fill_mask") or value is None:
            continue
        if _is_range(value):
            if _is_constant(value, 1.0 if key == "scale" else 0.0):
                continue  # a range that does nothing: rotate (0, 0), scale (1, 1)
        elif key in defaults and _same(value, defaults[key]):
            continue  # settings left at their defaults (interpolation, border, fill...)
        shown.append(f"{key}={_fmt(value)}")
    shown.append(f"p={_fmt(float(t.p))}")
    return f"{type(t).__name__}({', '.join(shown)})"


def _is_range(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, tuple) and len(value) == 2)


def _is_constant(value: Any, identity: float) -> bool:
    parts = value.values() if isinstance(value, dict) else [value]
    try:
        return all(float(a) == identity and float(b) == identity for a, b in parts)
    except (TypeError, ValueError):
        return False


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return False


def describe_preset(name: str, size: int) -> list[str]:
    """One line per transform of a preset at a given size, with its parameters."""
    transforms = PRESETS[name].build(size)
    if not transforms:
        return ["(nothing: images are only resized)"]
    return [describe_transform(t) for t in transforms]


# --- the transforms used by training -------------------------------------------------------------


class EnsureChannels(A.ImageOnlyTransform):
    """The last step: uint8 HWC with exactly `channels` channels, whatever came in (HW, HW1, HW3)."""

    def __init__(self, channels: int = 3, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.channels = channels

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        if img.ndim == 2:
            img = img[:, :, None]
        if img.shape[2] == self.channels:
            return img
        if self.channels == 1:
            return cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)[:, :, None]
        return np.repeat(img[:, :, :1], self.channels, axis=2)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("channels",)


def _extras(size: int, erasing: float, cutout: float, gridmask: float) -> list:
    for name, p in (("erasing", erasing), ("cutout", cutout), ("gridmask", gridmask)):
        if not 0.0 <= p <= 1.0:
            raise FlowError(f"--{name} is a probability between 0 and 1 (got {p})")
    extras: list = []
    if erasing > 0:  # random erasing (Zhong et al. 2017): one rectangle of 2-33% of the image, random values
        extras.append(A.Erasing(scale=(0.02, 0.33), ratio=(0.3, 3.3), fill="random_uniform", p=erasing))
    if cutout > 0:  # cutout (DeVries & Taylor 2017): one square hole, a quarter to a half of the side
        extras.append(A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(0.25, 0.5),
                                      hole_width_range=(0.25, 0.5), fill=0, p=cutout))
    if gridmask > 0:  # grid mask (Chen et al. 2020): a regular grid of dropped squares
        unit = max(2, size // 4)
        extras.append(A.GridDropout(ratio=0.4, unit_size_range=(unit, max(unit, size // 2)), random_offset=True,
                                    fill=0, p=gridmask))
    return extras


def _fit_channels(transform: Any, channels: int) -> Any:
    """A preset's transform for `channels` channels (None: left out). RGB: as it is. Other counts: the
    colour-only ones left out; for neither grey nor RGB (2, 4 or more channels, which albumentations'
    ColorJitter refuses) ColorJitter becomes RandomBrightnessContrast of its brightness and contrast, each
    channel scaled alike."""
    if channels == 3:
        return transform
    if isinstance(transform, _COLOUR_ONLY):
        return None
    if channels != 1 and isinstance(transform, A.ColorJitter):
        (b0, b1), (c0, c1) = transform.brightness, transform.contrast
        return A.RandomBrightnessContrast(brightness_limit=(b0 - 1, b1 - 1), contrast_limit=(c0 - 1, c1 - 1), p=transform.p)
    return transform


def build_train_transform(
    preset: str, size: int, channels: int, erasing: float = 0.0, cutout: float = 0.0, gridmask: float = 0.0
) -> A.Compose:
    """Resize to size x size (INTER_AREA), apply the preset, then erasing / cutout / grid mask with
    probability p each. Gives uint8 HWC images with `channels` channels."""
    transforms = [fitted for t in PRESETS[preset].build(size) if (fitted := _fit_channels(t, channels)) is not None]
    return A.Compose(
        [A.Resize(size, size, interpolation=cv2.INTER_AREA), *transforms, *_extras(size, erasing, cutout, gridmask),
         EnsureChannels(channels)]
    )


# --- test-time augmentation ---------------------------------------------------------------------


@dataclass(frozen=True)
class TtaViews:
    """The extra views test-time augmentation averages with the image itself, and how they read."""

    transforms: list
    description: str


def tta_views(preset: str, size: int) -> TtaViews:
    """Views of the kind training showed: the mirror where the preset flips, else four small shifts.

    A mirror is only a fair view when the model learned mirrored images; a digit or a letter has a
    handedness (a mirrored 2 is no 2), so presets without a flip get shifts of about 4% of the side
    (1 px at 28 px) left, right, up and down instead, which every preset's crops and affines cover.
    """
    if any(isinstance(t, A.HorizontalFlip) for t in PRESETS[preset].build(size)):
        return TtaViews([A.HorizontalFlip(p=1.0)], "the mirror image")
    step = max(1, round(size / 28))
    shifts = [(step, 0), (-step, 0), (0, step), (0, -step)]
    transforms = [A.Affine(translate_px={"x": dx, "y": dy}, border_mode=cv2.BORDER_REPLICATE, p=1.0) for dx, dy in shifts]
    return TtaViews(transforms, f"4 shifts of {step} px; the {preset} preset does not flip")


# --- preview ---------------------------------------------------------------------------------


def preview_grid(
    images: Sequence[np.ndarray], titles: Sequence[str], out: Path, title: str | None = None
) -> Path:
    """Save uint8 HWC images as a square-ish grid PNG with a title over each (atomic write)."""
    n = len(images)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = figure(1.8 * cols, 1.9 * rows + (0.4 if title else 0), rows=rows, cols=cols, layout="tight")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, name in zip(axes.ravel(), images, titles):
        image = preview_rgb(image)  # grey, or the first three channels as RGB
        if image.ndim == 2:
            ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(image, interpolation="nearest")
        ax.set_title(textwrap.fill(str(name), 20), fontsize=9)  # a label map's long names over two lines
    if title:
        fig.suptitle(title, fontsize=10)
    return save_png(fig, out)


def preview(
    rows: Any,
    class_names: Sequence[str],
    preset: str,
    size: int,
    channels: int,
    out: Path,
    *,
    n: int = 16,
    seed: int = 0,
    erasing: float = 0.0,
    cutout: float = 0.0,
    gridmask: float = 0.0,
) -> Path:
    """Augment n random training rows (canonical table) with a preset and save the grid to `out`."""
    if n < 1:
        raise FlowError(f"--n must be at least 1 (got {n})")
    labelled = rows[rows["label"].notna()] if "label" in rows else rows
    if labelled.empty:
        raise FlowError("no labelled training images to show")
    picked = labelled.sample(n=min(n, len(labelled)), random_state=seed)
    transform = build_train_transform(preset, size, channels, erasing=erasing, cutout=cutout, gridmask=gridmask)
    transform.set_random_seed(seed)
    images, titles = [], []
    for path, label in zip(picked["path"], picked["label"]):
        try:
            image = load_sample(path, size, channels)
        except Exception as exc:  # PIL raises many kinds for a bad file
            raise FlowError(f"{path}: cannot read the image ({type(exc).__name__}: {exc})") from None
        images.append(transform(image=image)["image"])
        titles.append(class_names[int(label)] if 0 <= int(label) < len(class_names) else str(label))
    return preview_grid(images, titles, out, title=f"preset '{preset}' at {size} px")
