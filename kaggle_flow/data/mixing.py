"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) on the batch tensors, where they already are.

The random draws are a few numbers per batch (which of the two, lam, the permutation, the box) from
a numpy Generator seeded per epoch; the pixels never leave the device. With both off, `Mixer` returns
the batch as it came, so the training step has one path.
"""

from __future__ import annotations

import numpy as np
import paddle

from kaggle_flow.errors import FlowError


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box (y0, y1, x0, x1) of about (1 - lam) of the image, centred at a random pixel, clipped."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y0, y1 = np.clip(cy - cut_h // 2, 0, height), np.clip(cy + cut_h // 2, 0, height)
    x0, x1 = np.clip(cx - cut_w // 2, 0, width), np.clip(cx + cut_w // 2, 0, width)
    return int(y0), int(y1), int(x0), int(x1)


class Mixer:
    """Mixes each batch with a shuffled copy of itself; `enabled` is False when both alphas are 0.

    Args:
        mixup, cutmix: Beta(alpha, alpha) parameters; 0 turns one off. With both on, each batch
            uses one of them, chosen with probability 0.5.
        seed: with `start_epoch`, fixes the draws of each epoch, so a resumed run mixes the same way.

    Per batch the generator draws, in this order: the choice (only when both are on), lam, the
    permutation, then for CutMix the box centre (row, column). Targets are mixed with exactly the lam
    used for the images; for CutMix that is 1 - (box area / image area) after clipping the box.
    """

    def __init__(self, mixup: float, cutmix: float, seed: int = 0) -> None:
        if mixup < 0 or cutmix < 0:
            raise FlowError(f"--mixup and --cutmix are Beta alphas >= 0 (got {mixup}, {cutmix})")
        self.mixup, self.cutmix, self.seed = mixup, cutmix, seed
        self.enabled = mixup > 0 or cutmix > 0
        self.rng = np.random.default_rng([seed, 0, 7])

    def start_epoch(self, epoch: int) -> None:
        self.rng = np.random.default_rng([self.seed, epoch, 7])

    def __call__(self, images: paddle.Tensor, targets: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        """images float [N, C, H, W], targets float [N, K] -> new mixed tensors (inputs unchanged)."""
        if not self.enabled:
            return images, targets
        rng = self.rng
        use_cutmix = self.cutmix > 0 and (self.mixup == 0 or rng.random() >= 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = float(rng.beta(alpha, alpha))
        perm = paddle.to_tensor(rng.permutation(int(images.shape[0])), dtype="int64")
        other_images = paddle.index_select(images, perm, axis=0)
        other_targets = paddle.index_select(targets, perm, axis=0)
        if use_cutmix:
            height, width = int(images.shape[2]), int(images.shape[3])
            y0, y1, x0, x1 = cutmix_box(height, width, lam, rng)
            box = np.zeros((1, 1, height, width), np.float32)
            box[..., y0:y1, x0:x1] = 1.0
            mask = paddle.to_tensor(box, dtype=images.dtype)
            mixed = images * (1.0 - mask) + other_images * mask
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
        else:
            mixed = images * lam + other_images * (1.0 - lam)
        return mixed, targets * lam + other_targets * (1.0 - lam)
