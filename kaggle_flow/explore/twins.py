"""Near twins: images whose perceptual hashes (64-bit phash) differ in at most `near` bits.

A copy re-encoded, resized by a few pixels or lightly recompressed keeps its phash within a few bits;
byte-identical copies (eda's exact duplicates) are at distance 0 and counted here too. Twins within
the labelled images (train and the download's own valid rows) whose labels differ are label noise;
a test image with a labelled twin is a leak; `flow split` keeps each group of labelled twins (the
connected components of their pairs) in one fold. Test-test pairs are left out: they change nothing.

The hashes are cached in runs/COMP/eda/hashes.csv (path, bytes, mtime_ns, phash): a file whose size
and modification time are unchanged is not decoded again, by eda or by split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kaggle_flow import console
from kaggle_flow.errors import FlowError
from kaggle_flow.explore.scan import scan_images
from kaggle_flow.fileio import write_csv
from kaggle_flow.sample_files import sample_files
from kaggle_flow.table.layouts import LABELLED
from kaggle_flow.target import TARGETS, Target

DEFAULT_NEAR = 4  # bits of 64: re-encoded and resized copies of MNIST digits land within 4, 99% within 2
HASH_COLUMNS = ["path", "bytes", "mtime_ns", "phash"]
PAIR_COLUMNS = ["a", "b", "distance", "split_a", "split_b", "label_a", "label_b"]
BLOCK = 256  # rows of hashes compared with the rest at once: BLOCK x N XORs (40 MB for 20,000)
MAX_PAIRS = 2_000_000  # near pairs kept at most: many identical images (blank ones) would pair up by the billion


def check_near(near: int | None) -> int:
    """The threshold in bits: DEFAULT_NEAR when None; a count of bits of 64 else."""
    if near is None:
        return DEFAULT_NEAR
    if not 0 <= near <= 64:
        raise FlowError(f"--near must be a number of bits from 0 to 64 (got {near})")
    return near


# --- the hash cache ---------------------------------------------------------------------------


def _stat(path: str) -> tuple[int, int]:
    """(bytes, mtime_ns) of a sample: summed and latest over its channel files; (-1, -1) when one is missing."""
    try:
        stats = [os.stat(file) for file in sample_files(path)]
    except OSError:
        return (-1, -1)
    return (sum(st.st_size for st in stats), max(st.st_mtime_ns for st in stats))


def _cached(cache_file: Path, paths: Sequence[str]) -> tuple[list[tuple[int, int]], list[str]]:
    """Each file's (size, mtime_ns) now, and its cached phash where they match the cache ("" if not)."""
    stats = [_stat(p) for p in paths]
    known: dict[str, tuple[int, int, str]] = {}
    try:
        cache = pd.read_csv(cache_file, dtype={"path": str, "phash": str}, keep_default_na=False)
        if list(cache.columns) == HASH_COLUMNS:
            known = {p: (int(b), int(m), h) for p, b, m, h in cache.itertuples(index=False)}
    except (OSError, ValueError):  # no cache yet, or one that does not read: hash again
        pass
    hashes = []
    for path, stat in zip(paths, stats):
        entry = known.get(path)
        hashes.append(entry[2] if entry and entry[:2] == stat else "")
    return stats, hashes


def _save_cache(cache_file: Path, paths: Sequence[str], stats: Sequence[tuple[int, int]], hashes: Sequence[str]) -> None:
    rows = [(p, s[0], s[1], h) for p, s, h in zip(paths, stats, hashes) if h]
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    write_csv(cache_file, pd.DataFrame(rows, columns=HASH_COLUMNS))


def scan_with_hashes(paths: Sequence[str], cache_file: Path, *, workers: int | None = None) -> pd.DataFrame:
    """scan_images of every file, with its `phash`: from the cache where the file is unchanged,
    else computed in the same pass (and the cache rewritten)."""
    paths = [str(p) for p in paths]
    stats, hashes = _cached(cache_file, paths)
    frame = scan_images(paths, perceptual=[not h for h in hashes], workers=workers)
    frame["phash"] = [h or new for h, new in zip(hashes, frame["phash"])]
    if frame["phash"].tolist() != hashes:
        _save_cache(cache_file, paths, stats, frame["phash"].tolist())
    return frame


def perceptual_hashes(paths: Sequence[str], cache_file: Path, *, workers: int | None = None) -> list[str]:
    """The phash of each file ("" for one that does not decode): cached ones read, the rest computed."""
    paths = [str(p) for p in paths]
    stats, hashes = _cached(cache_file, paths)
    missing = [i for i, h in enumerate(hashes) if not h]
    if missing:
        fresh = scan_images([paths[i] for i in missing], perceptual=True, workers=workers)
        for i, h in zip(missing, fresh["phash"]):
            hashes[i] = h
        _save_cache(cache_file, paths, stats, hashes)
    return hashes


# --- pairs and groups (pure) -----------------------------------------------------------------


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(axis=-1)


def near_pairs(hashes: Sequence[str], near: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance) of every pair i < j whose hashes differ in at most `near` bits ("" takes no
    part). Popcounts of XORs, BLOCK rows against the rest at a time: 20,000 hashes in about a second."""
    index = np.array([k for k, h in enumerate(hashes) if h], dtype=np.int64)
    packed = np.array([int(hashes[k], 16) for k in index], dtype=np.uint64)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    total = 0
    for start in range(0, len(packed), BLOCK):
        block = packed[start : start + BLOCK]
        distance = _popcount(block[:, None] ^ packed[None, start:])
        rows, cols = np.nonzero(distance <= near)
        keep = cols > rows  # each pair once; cols count from `start`, as rows do
        rows, cols = rows[keep][: MAX_PAIRS - total], cols[keep][: MAX_PAIRS - total]
        found.append((index[start + rows], index[start + cols], distance[rows, cols].astype(np.int64)))
        total += len(rows)
        if total >= MAX_PAIRS:
            console.warn(f"near duplicates: more than {MAX_PAIRS:,} pairs within {near} bits (many near-identical images, "
                         f"such as blank ones?); the first {MAX_PAIRS:,} are kept: a smaller --near finds fewer")
            break
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    i, j, d = (np.concatenate(parts) for parts in zip(*found))
    return i, j, d


def twin_groups(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """A group number for each of n items: the connected components of the pairs (i, j)."""
    from scipy.sparse import coo_matrix  # scipy: loaded only where pairs are grouped
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def pair_table(
    images: pd.DataFrame, near: int, class_names: Sequence[str] | None = None, target: Target = TARGETS["single"]
) -> pd.DataFrame:
    """Every near pair of usable images but test-test ones, closest first: PAIR_COLUMNS, plus
    `exact` (same bytes). A labelled image comes first in a train-test pair; its label as class
    names (a multi-label image's set, space-separated).

    `images` needs id, split, problem, hash, phash and the target's label column."""
    ok = images[(images["problem"] == "") & (images["phash"] != "")].reset_index(drop=True)
    i, j, d = near_pairs(ok["phash"].tolist(), near)
    test = (ok["split"] == "test").to_numpy()
    keep = ~(test[i] & test[j])
    i, j, d = i[keep], j[keep], d[keep]
    swap = test[i]
    i, j = np.where(swap, j, i), np.where(swap, i, j)
    labels = [target.describe(x, class_names) if s in LABELLED else "" for x, s in zip(ok[target.column], ok["split"])]
    pairs = pd.DataFrame({
        "a": ok["id"].to_numpy()[i], "b": ok["id"].to_numpy()[j], "distance": d,
        "split_a": ok["split"].to_numpy()[i], "split_b": ok["split"].to_numpy()[j],
        "label_a": np.array(labels, dtype=object)[i], "label_b": np.array(labels, dtype=object)[j],
        "exact": ok["hash"].to_numpy()[i] == ok["hash"].to_numpy()[j],
    })
    return pairs.sort_values(["distance", "a", "b"], kind="stable").reset_index(drop=True)


def summarize(pairs: pd.DataFrame, near: int, limit: int = 200) -> dict[str, Any]:
    """The counts of report.json's `near_duplicates` (pairs; groups of the labelled ones), with examples."""
    within = pairs[pairs["split_b"].isin(LABELLED)]
    cross = pairs[pairs["split_b"] == "test"]
    conflicting = within[within["label_a"] != within["label_b"]]
    ids = pd.unique(pd.concat([within["a"], within["b"]]))
    position = {x: k for k, x in enumerate(ids)}
    groups = twin_groups(len(ids), within["a"].map(position).to_numpy(), within["b"].map(position).to_numpy())
    first = cross.drop_duplicates("b")  # each test image's closest labelled twin
    return {
        "near": near,
        "within_train": len(within),
        "train_test": len(cross),
        "conflicting": len(conflicting),
        "groups": int(len(set(groups))),
        "grouped_images": len(ids),
        "test_images_with_twin": len(first),
        "conflicting_pairs": conflicting[PAIR_COLUMNS].head(limit).to_dict("records"),
        "test_twins": [
            {"test": b, "train": a, "label": lab, "distance": int(d)}
            for a, b, lab, d in zip(first["a"], first["b"], first["label_a"], first["distance"])
        ][:limit],
    }


# --- groups in folds ------------------------------------------------------------------------


def near_twin_groups(rows: pd.DataFrame, cache_file: Path, near: int | None = None) -> np.ndarray:
    """A group number for each of `rows` (their `path`): the connected components of their near
    twins (perceptual hashes from the cache, computed and cached for the images it lacks)."""
    hashes = perceptual_hashes(rows["path"].tolist(), cache_file)
    i, j, _ = near_pairs(hashes, check_near(near))
    return twin_groups(len(rows), i, j)


def _sizes(groups: np.ndarray) -> pd.Series:
    """Rows per group, of the groups of more than one row."""
    sizes = pd.Series(groups).value_counts()
    return sizes[sizes > 1]


def keep_together(groups: np.ndarray, labels: np.ndarray, share: float) -> tuple[np.ndarray | None, str]:
    """The groups make_folds keeps in one fold (None: none left, split freely), and the line that says so.

    `share`: a validation fold's share of the rows. A group larger than half what its class (its most
    common label) puts in such a fold would unbalance the fold: similar images chained into one group,
    such as the plain 1s of MNIST, rather than copies. Those are split freely, and the line says so.
    """
    sizes = _sizes(groups)
    if sizes.empty:
        return None, ""
    frame = pd.DataFrame({"group": groups, "label": labels})
    label_of = frame[frame["group"].isin(sizes.index)].groupby("group")["label"].agg(lambda x: x.mode().iloc[0])
    per_class = pd.Series(labels).value_counts()
    limit = np.maximum(2, (per_class.reindex(label_of.reindex(sizes.index)).to_numpy() * share / 2).astype(int))
    large, kept = sizes[sizes.to_numpy() > limit], sizes[sizes.to_numpy() <= limit]
    parts = []
    if len(kept):
        parts.append(f"{console.plural(len(kept), 'group')} of near twins ({console.plural(int(kept.sum()), 'image')}) kept in one fold each")
    if len(large):
        parts.append(
            f"{console.plural(len(large), 'group')} of {console.plural(int(large.sum()), 'near twin')} split freely "
            "(over half of what their class puts in a fold: similar images more than copies; a smaller --near joins fewer)"
        )
    note = "; ".join(parts) + "; --ignore-near to split them freely"
    if kept.empty:
        return None, note
    free = np.isin(groups, large.index.to_numpy())
    out = groups.copy()
    out[free] = groups.max() + 1 + np.arange(int(free.sum()))  # one group each
    return out, note


def leak_note(splits: pd.Series, groups: np.ndarray) -> str:
    """The line about groups of twins that span the download's train and valid images ("" if none)."""
    spans = pd.Series(splits.to_numpy()).groupby(groups).nunique()
    across = spans[spans > 1].index
    if not len(across):
        return ""
    images = int(np.isin(groups, across).sum())
    return (
        f"{console.plural(len(across), 'group')} of near twins ({console.plural(images, 'image')}) "
        f"{'spans' if len(across) == 1 else 'span'} the download's "
        "training and validation images: a leak (validation scores read high); the download's split is kept as it is"
    )
