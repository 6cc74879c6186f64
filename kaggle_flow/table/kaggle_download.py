"""A Kaggle competition's files, downloaded: `flow init --kaggle` and `flow import --kaggle`.

`downloaded` fetches a competition's archive into a temporary folder beside where its files go
(removed on every path); `init_from_kaggle` writes competitions/NAME.toml from it, with its slug,
and imports it: one download for both.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kaggle_flow.competition import load_file
from kaggle_flow.errors import FlowError
from kaggle_flow.kaggle_api import KaggleError, call, check_slug, client, require_credentials
from kaggle_flow.table.importer import import_data, init_competition, new_toml
from kaggle_flow.table.init_toml import Inferred
from kaggle_flow.table.sample import check_metric


def download(slug: str, folder: Path) -> Path:
    """Download the files of competition `slug` (Kaggle sends one archive) into `folder`; the archive's path."""
    api = client()
    call(slug, lambda: api.competition_download_files(slug, path=str(folder), force=True, quiet=True))
    archives = sorted(p for p in Path(folder).glob(f"{slug}.*") if p.is_file())
    if not archives:
        raise KaggleError(f"Kaggle sent no files for '{slug}'")
    return archives[0]


@contextlib.contextmanager
def downloaded(slug: str, beside: Path) -> Iterator[Path]:
    """The archive of competition `slug`, downloaded into a temporary folder in `beside` (made if missing),
    which is removed when the block ends, however it ends. A FlowError of the block names the archive
    as Kaggle sent it: the temporary folder is gone by the time the line is read."""
    check_slug(slug)
    require_credentials()
    beside.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".kaggle-", dir=beside) as folder:
        archive = download(slug, Path(folder))
        try:
            yield archive
        except FlowError as exc:
            raise type(exc)(str(exc).replace(str(archive), archive.name)) from None


def init_from_kaggle(
    name: str, slug: str, folder: Path = Path("competitions"), *, metric: str | None = None, data_dir: Path | None = None,
) -> tuple[Path, Inferred]:
    """Write competitions/NAME.toml from the files of Kaggle competition `slug`, as `flow init --from`
    writes it from their archive, with `kaggle = "SLUG"`, and import the same archive into `data_dir`
    (one download, however large; None: the TOML alone). Everything that can be checked is, before
    the download; an import that fails leaves the TOML, which `flow import NAME --kaggle` reads."""
    new_toml(name, folder)
    if metric is not None:
        check_metric(metric)
    if data_dir is not None and data_dir.is_dir() and any(data_dir.iterdir()):
        raise FlowError(f"{data_dir}: already holds data; remove it first, or write the TOML with --from and that folder")
    with downloaded(slug, folder.parent) as archive:
        file, inferred = init_competition(name, archive, folder, metric=metric, kaggle=slug)
        if data_dir is not None:
            try:
                import_data(load_file(file), archive, data_dir)
            except FlowError as exc:
                raise type(exc)(f"wrote {file}, but the import failed: {exc}; then: flow import {name} --kaggle") from None
    return file, inferred
