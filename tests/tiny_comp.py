"""A tiny generated competition for training tests: 3 classes of 16x16 grey stripes, in tmp_path.

    competitions/tiny.toml   (found because the tests run with tmp_path as working directory)
    data/tiny/train.csv, train/*.png, test/*.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TOML = """title = "tiny generated stripes"
classes = ["horizontal", "vertical", "diagonal"]
metric = "{metric}"
image_size = 16
channels = 1
mean = [0.5]
std = [0.25]

[layout]
kind = "csv"
train_csv = "train.csv"
train_dir = "train"
test_dir = "test"

[train]
model = "smallcnn"
epochs = 2
batch_size = 16
lr = 3e-3
warmup_epochs = 0.5
preset = "none"
"""


def stripes(label: int, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """A noisy grey image whose stripes run one way per class."""
    y, x = np.mgrid[0:size, 0:size]
    phase = int(rng.integers(4))
    pattern = [(y + phase) % 4 < 2, (x + phase) % 4 < 2, (x + y + phase) % 4 < 2][label]
    image = pattern * 180.0 + 40.0 + rng.normal(0, 25, (size, size))
    return np.clip(image, 0, 255).astype(np.uint8)


def make_tiny(root: Path, per_class: int = 20, n_test: int = 6, metric: str = "macro_f1") -> Path:
    """Write competitions/tiny.toml and data/tiny under `root` (the working directory); return the data dir."""
    (root / "competitions").mkdir(parents=True, exist_ok=True)
    (root / "competitions" / "tiny.toml").write_text(TOML.format(metric=metric))
    data = root / "data" / "tiny"
    (data / "train").mkdir(parents=True, exist_ok=True)
    (data / "test").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = ["id,label"]
    for i in range(per_class * 3):
        label = i % 3
        name = f"img_{i:03d}.png"
        Image.fromarray(stripes(label, rng)).save(data / "train" / name)
        lines.append(f"{name},{label}")
    (data / "train.csv").write_text("\n".join(lines) + "\n")
    for i in range(n_test):
        Image.fromarray(stripes(i % 3, rng)).save(data / "test" / f"test_{i:02d}.png")
    return data
