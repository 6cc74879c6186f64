"""Where a sample's files are, from the id a CSV gives: one image file, or one file per channel.

    one file        the id, with layout.id_extension appended when written without it; an id without
                    any image extension and no id_extension finds its file by stem (a sample's ids in
                    "stem" form); the table's id is the file name
    channel_files   one grey file per channel, {id}_{channel}{id_extension} (Human Protein Atlas:
                    abc_red.png, abc_green.png, abc_blue.png, abc_yellow.png); the table's id is the
                    id as written (abc), its path the pattern of kaggle_flow.sample_files

A training sample with a channel file missing is one line naming the file and the id. A test sample
with some of its channel files is kept: decoding it fails, and it is listed with the other broken
test images (data.images.warn_failed) and predicted as they are. A flat test folder of channel
files is grouped into samples by id (`channel_test_samples`); the ids of several test folders are
unique across them (`check_unique_test_ids`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from kaggle_flow.competition import IMAGE_EXTENSIONS, Layout
from kaggle_flow.errors import DataError
from kaggle_flow.names import path_inside
from kaggle_flow.sample_files import channel_file_name, sample_path


def image_path(folder: Path, image_id: str, layout: Layout, where: str, *, test: bool = False) -> tuple[str, Path]:
    """The table's id and path of the sample `image_id` names in `folder`; a missing file is one line naming `where`
    (a channel file: naming the file and the id). `test`: a test sample with some of its channel files is kept."""
    if layout.channel_files:
        return image_id, Path(_channel_sample(folder, image_id, layout, where, test))
    return _one_file(folder, image_id, layout.id_extension, where)


def _one_file(folder: Path, image_id: str, extension: str, where: str) -> tuple[str, Path]:
    name = image_id
    if extension and not image_id.lower().endswith(extension.lower()):
        name = image_id + extension
    path = path_inside(folder, name, where)
    if not path.is_file() and not extension and Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
        suffix = next((e for e in IMAGE_EXTENSIONS if (folder / (name + e)).is_file()), None)
        if suffix is not None:
            name, path = name + suffix, path_inside(folder, name + suffix, where)
    if not path.is_file():
        raise DataError(f"{where}: image '{name}' not found in {folder}")
    return name, path


def _channel_sample(folder: Path, image_id: str, layout: Layout, where: str, test: bool) -> str:
    if "{" in image_id or "}" in image_id:
        raise DataError(f"{where}: id '{image_id}' holds a brace, which the table's path of channel files cannot")
    names, extension = layout.channel_files, layout.id_extension
    missing = [n for n in names if not path_inside(folder, channel_file_name(image_id, n, extension), where).is_file()]
    if missing and (not test or len(missing) == len(names)):
        file = folder / channel_file_name(image_id, missing[0], extension)
        raise DataError(f"{file}: channel '{missing[0]}' of id '{image_id}' is missing")
    return sample_path(folder.resolve(), image_id, names, extension)


def channel_test_samples(folder: Path, channels: Sequence[str], extension: str) -> list[tuple[str, str]]:
    """(id, path) of each sample of a flat test folder of channel files: an id with one or more of its
    channel files (one with some missing is a broken test image when decoded), sorted by id."""
    ids = set()
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(extension) or not entry.is_file():
                continue
            stem = entry.name[: len(entry.name) - len(extension)]
            ids.update(stem[: -len(n) - 1] for n in channels if stem.endswith(f"_{n}") and len(stem) > len(n) + 1)
    base = folder.resolve()
    return [(i, sample_path(base, i, channels, extension)) for i in sorted(ids) if "{" not in i and "}" not in i]


def check_unique_test_ids(rows: Iterable[tuple[str, str, object, str]]) -> None:
    """The test rows (id, path, label, split) of several test folders hold no id twice; one that is in two
    folders is one line naming both files (the site's ids are file names: a submission could not tell them apart)."""
    first: dict[str, str] = {}
    for image_id, path, _, _ in rows:
        if image_id in first:
            raise DataError(f"{first[image_id]} and {path}: two test images with the one id '{image_id}' in two test "
                            "folders; rename one, or move it out of the test folders")
        first[image_id] = path
