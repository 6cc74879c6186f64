"""Small competition trees in the lemon, zodiac, palm and garbage layouts, generated in tmp_path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, seed: int, size: int = 16, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def lemon_tree(root: Path, per_class: int | Sequence[int] = 4, n_test: int = 5) -> Path:
    """train_images.csv (id,class_num), train_images/, test_images/, sample_submit.csv.

    `per_class`: images of each of the 4 classes, or one count per class (an imbalanced tree).
    """
    counts = [per_class] * 4 if isinstance(per_class, int) else list(per_class)
    rows = []
    for label, n in enumerate(counts):
        for i in range(n):
            name = f"train_{label}_{i:03d}.jpg"
            write_image(root / "train_images" / name, seed=label * 100 + i)
            rows.append(f"{name},{label}")
    (root / "train_images.csv").write_text("id,class_num\n" + "\n".join(rows) + "\n")
    test = [f"test_{i:04d}.jpg" for i in range(n_test)]
    for i, name in enumerate(test):
        write_image(root / "test_images" / name, seed=1000 + i)
    (root / "sample_submit.csv").write_text("id,class_num\n" + "".join(f"{n},0\n" for n in reversed(test)))
    return root


def folder_tree(root: Path, classes: list[str], per_class: int = 4, n_test: int = 5, valid: bool = False) -> Path:
    """train/CLASS/*.jpg (+ valid/CLASS/*.jpg) and a flat test/ folder (zodiac, garbage)."""
    for label, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / "train" / name / f"{name}_{i:03d}.jpg", seed=label * 100 + i)
            if valid:
                write_image(root / "valid" / name / f"{name}_v{i:03d}.jpg", seed=5000 + label * 100 + i)
    for i in range(n_test):
        write_image(root / "test" / f"test_{i:04d}.jpg", seed=2000 + i)
    return root


ZODIAC = ["ratt", "ox", "tiger", "rabbit", "dragon", "snake", "horse", "goat", "monkey", "rooster", "dog", "pig"]


def zodiac_tree(root: Path, per_class: int = 3) -> Path:
    return folder_tree(root, ZODIAC, per_class=per_class, valid=True)


def garbage_tree(root: Path, per_class: int = 4) -> Path:
    return folder_tree(root, ["other", "recyclable"], per_class=per_class)


def palm_tree(root: Path, per_prefix: int = 3, n_valid: int = 4, n_test: int = 4) -> Path:
    """PALM-Training400/{P,H,N}xxxx.jpg, PALM-Validation400/ + labels.csv, PALM-Testing400/."""
    for k, prefix in enumerate("PHN"):
        for i in range(per_prefix):
            write_image(root / "PALM-Training400" / f"{prefix}{i + 1:04d}.jpg", seed=k * 100 + i)
    lines = []
    for i in range(n_valid):
        name = f"V{i + 1:04d}.jpg"
        write_image(root / "PALM-Validation400" / name, seed=3000 + i)
        lines.append(f"{i + 1},{name},{i % 2}")
    (root / "PALM-Validation400" / "labels.csv").write_text("ID,imgName,Label\n" + "\n".join(lines) + "\n")
    for i in range(n_test):
        write_image(root / "PALM-Testing400" / f"T{i + 1:04d}.jpg", seed=4000 + i)
    return root
