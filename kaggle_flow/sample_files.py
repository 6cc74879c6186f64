"""Several files per sample: how the canonical table's `path` names an input stacked from channel files.

Most layouts read one image file a sample, and `path` is that file. A layout with
`layout.channel_files` (Human Protein Atlas: train/{id}_red.png, _green, _blue, _yellow, all grey)
stacks several files into one H x W x C input; its `path` is then one pattern that names them all,
the channel names in braces, in channel order:

    data/hpa/train/00070df0_{red,green,blue,yellow}.png

`sample_files(path)` gives the files (.../00070df0_red.png, ..._green.png, ...); a plain path is its
one file. Every reader of `path` goes through it: decoding reads each file as grey and stacks them
(data.images.load_sample), eda scans and hashes every file of a sample (explore.scan, explore.twins),
and the galleries show the first three channels as RGB (data.images.preview_rgb). The table's other
columns are the same as for any layout: `id` is the id as the CSV writes it (00070df0).

A pattern is a brace group of two or more comma-separated names in the path's last component.
Channel names hold no comma, brace, slash or space (competition.Layout checks); an image file whose
own name holds such a group cannot be read by a one-file layout.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

CHANNEL_NAME = re.compile(r"[^,{}/\\\s]+")  # a channel name: no comma, brace, slash or space
_GROUP = re.compile(r"\{([^,{}/\\\s]+(?:,[^,{}/\\\s]+)+)\}(?=[^/\\]*$)")  # {a,b,...} in the last component


def channel_file_name(image_id: str, channel: str, extension: str) -> str:
    """The file of one channel of a sample: {id}_{channel}{extension} (abc_red.png)."""
    return f"{image_id}_{channel}{extension}"


def sample_path(folder: Path, image_id: str, channels: Sequence[str], extension: str) -> str:
    """The table's `path` of a sample of channel files: the one file for one channel, else the pattern."""
    if len(channels) == 1:
        return str(folder / channel_file_name(image_id, channels[0], extension))
    return str(folder / channel_file_name(image_id, "{" + ",".join(channels) + "}", extension))


def sample_channels(path: str) -> list[tuple[str, str]]:
    """(channel name, file) of each file of a sample, in channel order; a plain path: [("", path)]."""
    path = str(path)
    found = list(_GROUP.finditer(path))
    if not found:
        return [("", path)]
    group = found[-1]
    head, tail = path[: group.start()], path[group.end() :]
    return [(name, f"{head}{name}{tail}") for name in group.group(1).split(",")]


def sample_files(path: str) -> list[str]:
    """The files of a sample: its channel files in order, or the one file of a plain path."""
    return [file for _, file in sample_channels(path)]
