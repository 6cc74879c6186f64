"""Augmentation presets and batch mixing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from kaggle_flow.data import augment
from kaggle_flow.errors import FlowError, NotFoundError

PRESETS = list(augment.PRESETS)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("shape", [(37, 23), (37, 23, 1), (37, 23, 3)], ids=["HW", "HW1", "HW3"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_preset_gives_uint8_hwc_at_the_size(name: str, shape: tuple[int, ...], channels: int) -> None:
    transform = augment.build_train_transform(name, 24, channels, erasing=0.5, cutout=0.5, gridmask=0.5)
    transform.set_random_seed(0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        out = transform(image=rng.integers(0, 256, shape, dtype=np.uint8))["image"]
        assert out.shape == (24, 24, channels) and out.dtype == np.uint8


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_described(name: str) -> None:
    lines = augment.describe_preset(name, 32)
    assert lines and all(line.strip() for line in lines)
    preset = augment.PRESETS[name]
    assert preset.name == name and preset.description


def test_descriptions_spell_out_the_parameters() -> None:
    assert augment.describe_preset("flip", 32) == ["HorizontalFlip(p=0.5)"]
    (affine,) = augment.describe_preset("affine", 28)
    assert affine.startswith("Affine(") and "rotate=(-12, 12)" in affine and "translate_percent=(-0.1, 0.1)" in affine
    assert "Flip" not in " ".join(augment.describe_preset("affine", 28))  # digits must not be mirrored
    assert "size=(64, 64)" in augment.describe_preset("medium", 64)[0]


def test_same_seed_same_images() -> None:
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    runs = []
    for _ in range(2):
        t = augment.build_train_transform("heavy", 32, 3)
        t.set_random_seed(7)
        runs.append(t(image=image)["image"])
    np.testing.assert_array_equal(runs[0], runs[1])


def test_none_preset_only_resizes() -> None:
    image = np.full((10, 10), 200, dtype=np.uint8)
    out = augment.build_train_transform("none", 20, 1)(image=image)["image"]
    assert out.shape == (20, 20, 1) and (out == 200).all()


def test_unknown_preset_lists_the_valid_names() -> None:
    with pytest.raises(NotFoundError) as exc:
        augment.PRESETS["wild"]
    assert str(exc.value) == "unknown augmentation preset 'wild' (valid: none, flip, affine, light, medium, heavy)"


def test_probabilities_are_checked() -> None:
    with pytest.raises(FlowError) as exc:
        augment.build_train_transform("none", 16, 1, cutout=1.5)
    assert str(exc.value) == "--cutout is a probability between 0 and 1 (got 1.5)"


def test_tta_mirrors_only_what_training_mirrored() -> None:
    """A digit's mirror is another glyph: presets without a flip get shifts as their test-time views."""
    dot = np.zeros((28, 28, 1), np.uint8)
    dot[10, 12] = 255
    views = augment.tta_views("affine", 28)
    moved = [tuple(np.argwhere(v(image=dot)["image"][..., 0] == 255)[0]) for v in views.transforms]
    assert sorted(moved) == [(9, 12), (10, 11), (10, 13), (11, 12)]  # 1 px up, left, right, down; nothing mirrored
    assert views.description == "4 shifts of 1 px; the affine preset does not flip"
    assert augment.tta_views("none", 64).description == "4 shifts of 2 px; the none preset does not flip"

    mirror = augment.tta_views("medium", 64)
    assert mirror.description == "the mirror image"
    (view,) = mirror.transforms
    assert tuple(np.argwhere(view(image=dot)["image"][..., 0] == 255)[0]) == (10, 15)


SPY = """\
import urllib.request

asked = []

def offline(self, url, *args, **kwargs):
    asked.append(getattr(url, "full_url", url))
    raise OSError("offline")

urllib.request.OpenerDirector.open = offline
import kaggle_flow.data.augment
print(asked)
"""


def test_importing_the_augmentations_asks_no_server() -> None:
    """albumentations asks PyPI for its latest version at import unless told not to: flow tells it."""
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    done = subprocess.run([sys.executable, "-c", SPY], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert "version" not in done.stderr
