"""Mixup and CutMix on the batch tensors: the exact mix, the label weights, the draws per epoch."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from kaggle_flow.errors import FlowError
from kaggle_flow.data.mixing import Mixer, cutmix_box


def _batch(n: int = 6, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    images = rng.normal(size=(n, 2, 8, 10)).astype(np.float32)
    targets = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    return images, targets


def _mix(mixer: Mixer, images: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out_images, out_targets = mixer(paddle.to_tensor(images), paddle.to_tensor(targets))
    return out_images.numpy(), out_targets.numpy()


def _mixer(mixup: float, cutmix: float, seed: int, epoch: int = 1) -> tuple[Mixer, np.random.Generator]:
    """A Mixer at the start of an epoch, and a generator making the same draws by hand."""
    mixer = Mixer(mixup, cutmix, seed)
    mixer.start_epoch(epoch)
    return mixer, np.random.default_rng([seed, epoch, 7])


def test_no_mixing_returns_the_batch() -> None:
    images, targets = _batch()
    mixer = Mixer(0.0, 0.0)
    assert not mixer.enabled
    out_images, out_targets = _mix(mixer, images, targets)
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_targets, targets)


def test_mixup_mixes_by_lam_exactly() -> None:
    images, targets = _batch()
    mixer, hand = _mixer(0.4, 0.0, seed=5)
    x = paddle.to_tensor(images)
    out_images, out_targets = mixer(x, paddle.to_tensor(targets))
    lam = hand.beta(0.4, 0.4)  # the documented order: lam, then the permutation
    perm = hand.permutation(len(images))
    np.testing.assert_allclose(out_images.numpy(), lam * images + (1 - lam) * images[perm], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out_targets.numpy(), lam * targets + (1 - lam) * targets[perm], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out_targets.numpy().sum(axis=1), 1.0, rtol=1e-6)
    assert out_images.dtype == paddle.float32
    np.testing.assert_array_equal(x.numpy(), images)  # the input is not changed


def test_cutmix_pastes_a_box_and_corrects_lam_by_its_area() -> None:
    images, targets = _batch()
    mixer, hand = _mixer(0.0, 1.0, seed=11)
    out_images, out_targets = _mix(mixer, images, targets)
    lam = hand.beta(1.0, 1.0)
    perm = hand.permutation(len(images))
    y0, y1, x0, x1 = cutmix_box(8, 10, lam, hand)
    assert (y1 - y0) * (x1 - x0) > 0
    expected = images.copy()
    expected[:, :, y0:y1, x0:x1] = images[perm, :, y0:y1, x0:x1]
    np.testing.assert_array_equal(out_images, expected)
    area_lam = 1 - (y1 - y0) * (x1 - x0) / 80
    np.testing.assert_allclose(out_targets, area_lam * targets + (1 - area_lam) * targets[perm], rtol=1e-6)
    # the share of each image's own pixels is the weight of its own label
    own = (out_images == images).all(axis=1).mean(axis=(1, 2))
    moved = perm != np.arange(len(perm))
    np.testing.assert_allclose(own[moved], area_lam, rtol=1e-6)


def test_each_epoch_draws_afresh_and_the_same_epoch_draws_the_same() -> None:
    images, targets = _batch()
    a, _ = _mixer(0.4, 0.0, seed=2, epoch=1)
    b, _ = _mixer(0.4, 0.0, seed=2, epoch=1)
    c, _ = _mixer(0.4, 0.0, seed=2, epoch=2)
    first, again, other = _mix(a, images, targets), _mix(b, images, targets), _mix(c, images, targets)
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.allclose(first[0], other[0])


@pytest.mark.parametrize("seed", range(20))
def test_mixed_targets_are_distributions(seed: int) -> None:
    images, targets = _batch(n=5, k=3)
    mixer, _ = _mixer(0.2, 1.0, seed=seed)
    _, soft = _mix(mixer, images, targets)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    assert (soft >= 0).all() and (soft <= 1 + 1e-6).all()


def test_cutmix_box_stays_inside_the_image() -> None:
    rng = np.random.default_rng(0)
    for lam in np.linspace(0, 1, 21):
        y0, y1, x0, x1 = cutmix_box(9, 13, float(lam), rng)
        assert 0 <= y0 <= y1 <= 9 and 0 <= x0 <= x1 <= 13


def test_negative_alpha_is_refused() -> None:
    with pytest.raises(FlowError, match=r"^--mixup and --cutmix are Beta alphas >= 0 \(got -1.0, 0.0\)$"):
        Mixer(-1.0, 0.0)
