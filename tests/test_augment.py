"""Augmentation presets and batch mixing."""

from __future__ import annotations

import numpy as np
import pytest

from kaggle_flow import augment
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
    preset = augment.get_preset(name)
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
    assert augment.build_eval_transform(20)(image=image)["image"].shape == (20, 20)


def test_unknown_preset_lists_the_valid_names() -> None:
    with pytest.raises(NotFoundError) as exc:
        augment.get_preset("wild")
    assert str(exc.value) == "unknown augmentation preset 'wild' (valid: none, flip, affine, light, medium, heavy)"


def test_probabilities_are_checked() -> None:
    with pytest.raises(FlowError) as exc:
        augment.build_train_transform("none", 16, 1, cutout=1.5)
    assert str(exc.value) == "--cutout is a probability between 0 and 1 (got 1.5)"


def _batch(n: int = 6, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    images = rng.normal(size=(n, 2, 8, 10)).astype(np.float32)
    targets = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    return images, targets


def test_no_mixing_returns_the_batch() -> None:
    images, targets = _batch()
    out_images, out_targets = augment.mix_batch(images, targets, 0.0, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_targets, targets)


def test_mixup_mixes_by_lam_exactly() -> None:
    images, targets = _batch()
    before = images.copy()
    out_images, out_targets = augment.mix_batch(images, targets, 0.4, 0.0, np.random.default_rng(5))
    hand = np.random.default_rng(5)  # the documented order: lam, then the permutation
    lam = hand.beta(0.4, 0.4)
    perm = hand.permutation(len(images))
    np.testing.assert_allclose(out_images, lam * images + (1 - lam) * images[perm], rtol=1e-6)
    np.testing.assert_allclose(out_targets, lam * targets + (1 - lam) * targets[perm], rtol=1e-6)
    np.testing.assert_allclose(out_targets.sum(axis=1), 1.0, rtol=1e-6)
    assert out_images.dtype == np.float32 and out_targets.dtype == np.float32
    np.testing.assert_array_equal(images, before)  # the input is not changed


def test_cutmix_pastes_a_box_and_corrects_lam_by_its_area() -> None:
    images, targets = _batch()
    out_images, out_targets = augment.mix_batch(images, targets, 0.0, 1.0, np.random.default_rng(11))
    hand = np.random.default_rng(11)
    lam = hand.beta(1.0, 1.0)
    perm = hand.permutation(len(images))
    y0, y1, x0, x1 = augment.cutmix_box(8, 10, lam, hand)
    expected = images.copy()
    expected[:, :, y0:y1, x0:x1] = images[perm, :, y0:y1, x0:x1]
    np.testing.assert_array_equal(out_images, expected)
    area_lam = 1 - (y1 - y0) * (x1 - x0) / 80
    np.testing.assert_allclose(out_targets, area_lam * targets + (1 - area_lam) * targets[perm], rtol=1e-6)
    # the share of each image's own pixels is the weight of its own label
    own = (out_images == images).all(axis=1).mean(axis=(1, 2))
    moved = perm != np.arange(len(perm))
    np.testing.assert_allclose(own[moved], area_lam, rtol=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_mixed_targets_are_distributions(seed: int) -> None:
    images, targets = _batch(n=5, k=3)
    _, soft = augment.mix_batch(images, targets, 0.2, 1.0, np.random.default_rng(seed))
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    assert (soft >= 0).all() and (soft <= 1 + 1e-6).all()


def test_cutmix_box_stays_inside_the_image() -> None:
    rng = np.random.default_rng(0)
    for lam in np.linspace(0, 1, 21):
        y0, y1, x0, x1 = augment.cutmix_box(9, 13, float(lam), rng)
        assert 0 <= y0 <= y1 <= 9 and 0 <= x0 <= x1 <= 13


def test_negative_alpha_is_refused() -> None:
    images, targets = _batch()
    with pytest.raises(FlowError):
        augment.mix_batch(images, targets, -1.0, 0.0, np.random.default_rng(0))
