"""`flow init --from`: a download of several files per sample, read as `layout.channel_files`.

Human Protein Atlas ships each sample as four grey PNGs, train/{Id}_red.png, _green, _blue, _yellow,
and its train.csv names the ids without the suffix. Such a download is recognised when no column of
the training CSV names image files, but one names ids whose files {id}_{channel}{ext} are all in one
folder, the same channels for every id probed. The TOML then takes every channel, red, green, blue,
yellow first (in that order) and others after them alphabetically; `channels` is their count and
`mean`/`std` are measured on the probed samples, one value per channel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kaggle_flow.competition import IMAGE_EXTENSIONS, MAX_CHANNELS
from kaggle_flow.data.images import load_sample
from kaggle_flow.sample_files import CHANNEL_NAME, channel_file_name, sample_path
from kaggle_flow.table.layouts import find_dir

if TYPE_CHECKING:
    import pandas as pd

    from kaggle_flow.table.infer import Found

COLOUR_ORDER = ("red", "green", "blue", "yellow")  # HPA's channels, in the order its documentation gives them
PROBE = 50  # ids of the training CSV looked at
STATS_SIDE = 64  # px: the samples' mean and std measured at this size


@dataclass(frozen=True)
class ChannelFiles:
    """A training CSV column of ids whose channel files lie in one folder."""

    id_column: str
    folder: str  # as the TOML names it (train)
    extension: str  # .png
    channels: list[str]
    ids: list[str]  # the ids probed


def match_channel_files(root: Path, frame: pd.DataFrame, folders: list[str]) -> ChannelFiles | None:
    """The first column of `frame` whose probed ids each have the same channel files in one of `folders`."""
    for column in frame.columns:
        ids = [str(v).strip() for v in frame[column].head(PROBE)]
        if not ids or not all(ids):
            continue
        for name in folders:
            folder = find_dir(root, name)
            found = _channels_of(folder, ids) if folder is not None else None
            if found is not None:
                return ChannelFiles(column, name, found[0], found[1], ids)
    return None


def _channels_of(folder: Path, ids: list[str]) -> tuple[str, list[str]] | None:
    """(extension, channels) when every id has a file {id}_{channel}{extension} for each channel of the first id."""
    with os.scandir(folder) as entries:
        names = {e.name for e in entries if e.is_file()}
    first = [n for n in names if n.startswith(ids[0] + "_") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
    if len(first) < 2:
        return None
    extension = os.path.splitext(sorted(first)[0])[1]
    channels = [n[len(ids[0]) + 1 : len(n) - len(extension)] for n in first if n.endswith(extension)]
    channels = [c for c in channels if CHANNEL_NAME.fullmatch(c) and "_" not in c]  # abc_x_red.png: id abc_x
    if not 2 <= len(channels) <= MAX_CHANNELS:
        return None
    if not all(channel_file_name(i, c, extension) in names for i in ids for c in channels):
        return None
    known = [c for c in COLOUR_ORDER if c in channels]
    return extension, known + sorted(c for c in channels if c not in known)


def record_channels(found: Found, match: ChannelFiles) -> None:
    """The TOML keys of a download of channel files: layout.channel_files, channels, mean and std."""
    found.layout["channel_files"] = list(match.channels)
    mean, std = _statistics(found.root, match)
    found.top.update(channels=len(match.channels), mean=mean, std=std)
    found.note(f"several files a sample: {', '.join(match.channels)} ({{id}}_{{channel}}{match.extension}), "
               f"stacked as {len(match.channels)} channels; mean/std of {len(match.ids)} samples",
               found.root / match.folder)


def _statistics(root: Path, match: ChannelFiles) -> tuple[list[float], list[float]]:
    """Each channel's mean and std (0-1) over the probed samples; 0.5 and 0.25 when they do not decode."""
    folder = find_dir(root, match.folder) or root / match.folder
    try:
        pixels = np.stack([load_sample(sample_path(folder, i, match.channels, match.extension), STATS_SIDE,
                                       len(match.channels)) for i in match.ids]).astype(np.float64) / 255.0
    except Exception:  # a file that does not decode: eda names it; the statistics need not wait for it
        return [0.5] * len(match.channels), [0.25] * len(match.channels)
    mean = [round(float(m), 4) for m in pixels.mean(axis=(0, 1, 2))]
    std = [round(max(float(s), 1e-3), 4) for s in pixels.std(axis=(0, 1, 2))]
    return mean, std
