"""Reading image headers, never pixels: what each file is, and whether it can be used at all.

Each file is read once: its bytes are hashed (exact duplicates) and handed to PIL, which parses only
the header (size, mode, format, EXIF orientation). A cheap check of the file's end catches truncated
JPEG/PNG/GIF/BMP/WebP files, the usual result of a broken download. Large scans run in a process pool.
Asked for (`perceptual`), a usable image is also decoded, small (JPEG's draft mode), for its perceptual
hash: near twins (explore.twins) are found from it, and its cache saves the decoding next time.
A sample of several channel files (kaggle_flow.sample_files) is scanned file by file: its bytes and
hash cover them all, its header is its first file's, its problem the first one found, and its
perceptual hash that of its first three channels seen as RGB.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import multiprocessing
import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from PIL import Image, UnidentifiedImageError

from kaggle_flow import console
from kaggle_flow.data.images import load_sample, preview_rgb
from kaggle_flow.sample_files import sample_files

# Problems that make an image unusable: it goes to broken.csv and out of every later step.
ZERO_BYTE = "zero-byte"
NOT_IMAGE = "not an image"
TRUNCATED = "truncated"
UNREADABLE = "unreadable"
PROBLEMS = (UNREADABLE, ZERO_BYTE, NOT_IMAGE, TRUNCATED)

HIGH_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
SERIAL_BELOW = 1000  # smaller scans run in this process: a pool costs more than it saves
CHUNK = 256  # files per task sent to a worker process


class ImageInfo(NamedTuple):
    """What the header of one image file says (no pixel is decoded)."""

    bytes: int = 0
    hash: str = ""
    format: str = ""
    mode: str = ""
    width: int = 0
    height: int = 0
    bits: int = 8  # bits per sample; 16 for 16-bit PNGs even when PIL calls them RGB
    orientation: int = 0  # EXIF orientation tag; 0 when absent
    grey_palette: bool = False  # mode P whose palette holds only greys
    transparency: bool = False  # mode P/L/RGB with a transparent colour
    problem: str = ""  # one of PROBLEMS, or "" for a usable image
    phash: str = ""  # 64-bit perceptual hash, 16 hex digits; "" when not asked for or not decodable


SCAN_COLUMNS = list(ImageInfo._fields)


# --- one file -------------------------------------------------------------------------------


def _truncated(data: bytes, fmt: str) -> bool:
    """True when the file stops before its format's end marker (trailing padding is allowed)."""
    if fmt in ("JPEG", "MPO"):
        # The last scan (after the last SOS marker) must be closed by an EOI marker; markers cannot
        # occur inside entropy-coded data, and an EXIF thumbnail's EOI comes before the main SOS.
        eoi = data.rfind(b"\xff\xd9")
        return eoi < 0 or eoi < data.rfind(b"\xff\xda")
    if fmt == "PNG":
        return b"IEND\xaeB`\x82" not in data[-4096:]
    if fmt == "GIF":
        return not data.rstrip(b"\x00").endswith(b";")
    if fmt == "BMP":
        return len(data) < int.from_bytes(data[2:6], "little")
    if fmt == "WEBP":
        return len(data) < 8 + int.from_bytes(data[4:8], "little")
    if fmt == "TIFF":  # the first directory (often written after the pixels) must fit in the file
        order = "little" if data[:2] == b"II" else "big"
        at = int.from_bytes(data[4:8], order)
        entries = int.from_bytes(data[at : at + 2], order) if at + 2 <= len(data) else 0
        return at + 2 + 12 * entries > len(data)
    return False


def _tiff_cut(image: Any, size: int) -> bool:
    """True when a TIFF's pixel data (its strips or tiles, placed by the header) ends past the file."""
    tags = getattr(image, "tag_v2", {})
    offsets = tags.get(273) or tags.get(324) or ()  # StripOffsets, else TileOffsets
    counts = tags.get(279) or tags.get(325) or ()  # StripByteCounts, else TileByteCounts
    ends = [int(o) + int(c) for o, c in zip(offsets, counts)]
    return bool(ends) and max(ends) > size


def _sniff(data: bytes) -> str:
    """The format told by the magic bytes alone (for files whose header PIL cannot finish)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return ""


def _orientation(image: Any) -> int:
    """The EXIF orientation tag, read from the header only (PNG's getexif would decode the image)."""
    if image.format == "PNG":
        raw = image.info.get("exif")
        if not raw:
            return 0
        exif = Image.Exif()
        exif.load(raw)
    else:
        exif = image.getexif()
    value = exif.get(0x0112, 0)
    return int(value) if isinstance(value, int) else 0


def _grey_palette(image: Any) -> bool:
    """True when every palette entry is a grey (read from the header: getpalette() would decode)."""
    palette = image.palette
    layout = (palette.rawmode or palette.mode) if palette is not None else ""
    if layout not in ("RGB", "RGBA", "RGBX", "BGR", "BGRA", "BGRX"):
        return False
    data, step = bytes(palette.palette), len(layout)
    return all(data[i] == data[i + 1] == data[i + 2] for i in range(0, len(data) - 2, step))


def perceptual_hash(data: bytes) -> str:
    """imagehash's phash (64 bits) of the decoded image, or "" when it does not decode. The decoder
    may scale a JPEG down (to 64 px at least): phash looks at 32x32 grey pixels anyway."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                image.draft("L", (64, 64))
                return _phash(image)
    except Exception:  # a header that parses over pixels that do not: no hash, no near twin
        return ""


def _phash(image: Image.Image) -> str:
    import imagehash  # scipy and PyWavelets: loaded only by a scan that hashes

    return str(imagehash.phash(image.convert("L")))


def scan_image(path: str | os.PathLike[str], perceptual: bool = False) -> ImageInfo:
    """Hash one file and read its image header (and, with `perceptual`, its perceptual hash);
    a problem is reported, never raised. A sample of channel files: `_scan_channels`."""
    files = sample_files(str(path))
    if len(files) > 1:
        return _scan_channels(str(path), files, perceptual)
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ImageInfo(problem=UNREADABLE)
    if not data:
        return ImageInfo(problem=ZERO_BYTE)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    base = ImageInfo(bytes=len(data), hash=digest)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning, odd EXIF: the header is enough
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                mode = image.mode
                width, height = image.size
                bits = 16 if fmt == "PNG" and len(data) > 24 and data[24] == 16 else 8
                if mode in HIGH_BIT_MODES:
                    bits = 32 if mode in ("I", "F") else 16
                grey = mode in ("P", "PA") and _grey_palette(image)
                transparency = "transparency" in image.info
                cut = fmt == "TIFF" and _tiff_cut(image, len(data))
                try:
                    orientation = _orientation(image)
                except Exception:  # a malformed EXIF block says nothing about the pixels
                    orientation = 0
    except Exception as exc:  # PIL raises many kinds (SyntaxError, struct.error, OSError...) on bad headers
        sniffed = _sniff(data)
        if sniffed and _truncated(data, sniffed):  # a header cut short (a TIFF's directory after its pixels)
            return base._replace(format=sniffed, problem=TRUNCATED)
        return base._replace(format=sniffed, problem=NOT_IMAGE if isinstance(exc, UnidentifiedImageError) else UNREADABLE)
    problem = TRUNCATED if cut or _truncated(data, fmt) else ""
    phash = perceptual_hash(data) if perceptual and not problem else ""
    return ImageInfo(len(data), digest, fmt, mode, width, height, bits, orientation, grey, transparency, problem, phash)


def _scan_channels(path: str, files: list[str], perceptual: bool) -> ImageInfo:
    """The files of one sample as one image: bytes summed, one hash of them all, the first file's
    header, the first problem; the perceptual hash of its first three channels as RGB."""
    infos = [scan_image(file) for file in files]
    problem = next((i.problem for i in infos if i.problem), "")
    digest = hashlib.blake2b("".join(i.hash for i in infos).encode(), digest_size=16).hexdigest()
    info = infos[0]._replace(bytes=sum(i.bytes for i in infos), hash=digest, problem=problem)
    if not perceptual or problem:
        return info
    try:
        image = Image.fromarray(preview_rgb(load_sample(path, 64, len(files))))
    except Exception:  # pixels that do not decode: no hash, no near twin
        return info
    return info._replace(phash=_phash(image))


def _scan_chunk(jobs: Sequence[tuple[str, bool]]) -> list[ImageInfo]:
    return [scan_image(p, h) for p, h in jobs]


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def _pool(workers: int) -> Any:
    """A process pool; "fork" where the OS has it, so workers start without re-importing anything."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def scan_images(
    paths: Iterable[str | os.PathLike[str]],
    *,
    perceptual: bool | Sequence[bool] = False,
    workers: int | None = None,
    show_progress: bool = True,
) -> pd.DataFrame:
    """Scan many files (a process pool when there are many); one row per file, in order.
    `perceptual`: hash the pixels of every file, or of those marked True (one flag a file)."""
    paths = [str(p) for p in paths]
    flags = [perceptual] * len(paths) if isinstance(perceptual, bool) else [bool(f) for f in perceptual]
    jobs = list(zip(paths, flags))
    workers = _workers() if workers is None else workers
    with contextlib.ExitStack() as stack:
        if workers > 1 and len(paths) >= SERIAL_BELOW:
            Image.init()  # load the format plugins once, before the workers are forked
            pool = stack.enter_context(_pool(workers))
            chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
            # map() submits every chunk now, so the workers exist before a progress thread does
            results: Iterable[ImageInfo] = itertools.chain.from_iterable(pool.map(_scan_chunk, chunks))
        else:
            results = itertools.starmap(scan_image, jobs)
        if show_progress:
            what = "Reading image headers" + (" and hashing pixels" if any(flags) else "")
            results = console.progress(results, len(paths), what)
        frame = pd.DataFrame(list(results), columns=SCAN_COLUMNS)
    for column in ("bytes", "width", "height", "bits", "orientation"):
        frame[column] = frame[column].astype("int64")
    return frame
