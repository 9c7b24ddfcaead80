"""``bench fetch``: put a dataset under the data root, from its official location or a mirror.

Official: each card ``download`` entry ``{url, file, sha256?}`` is fetched with urllib into
``<dest>/<folder>/.download/``, checked against its sha256 when the card gives one, and
extracted (``.tgz``/``.tar.gz``/``.tar``/``.zip``) into ``<dest>/<folder>/``; plain files are
placed there as they are. ``BENCH_MIRROR`` (a directory or ``file://`` URL) replaces the
official location: a mirror holding the dataset's folder in the data-root layout
(``<mirror>/lfw/...``) is linked (symlink, the default) or copied into ``dest``; otherwise
the card's files are taken from the mirror by name (same checks and extraction).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from bench.core import registry
from bench.core.cards import get_card
from bench.core.errors import BenchError, DataError
from bench.core.io import atomic_path, sha256_file
from bench.datasets.common import CardLoader, layouts

_ARCHIVES = (".tgz", ".tar.gz", ".tar", ".zip")


def mirror_path(mirror: str | None) -> Path | None:
    """The mirror as a local folder (plain path or ``file://`` URL); None when unset."""
    if not mirror:
        return None
    if mirror.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(mirror).path))
    if "://" in mirror:
        raise DataError(f"BENCH_MIRROR={mirror}: only a directory or a file:// URL is supported")
    return Path(mirror)


def _folders(name: str) -> list[str]:
    """The dataset folder names the card's layout accepts (first = the one fetch creates)."""
    loader = registry.create("dataset", name)
    out = []
    for layout in layouts(loader):
        if layout.folder and "/" not in layout.folder and layout.folder not in out:
            out.append(layout.folder)
    if not out:
        raise DataError(f"{loader.card.path}: no dataset folder in 'layouts' to fetch into")
    return out


def _verify(path: Path, sha256: str | None) -> None:
    if sha256 and sha256_file(path) != sha256.lower():
        raise DataError(f"{path}: sha256 mismatch (expected {sha256}); the download is corrupt or changed")


def _inside(base: Path, member: str) -> bool:
    target = os.path.normpath(os.path.join(base, member))
    return target == str(base) or target.startswith(str(base) + os.sep)


def extract(archive: Path, dest: Path) -> None:
    """Extract a .tgz/.tar/.zip into ``dest``, refusing members that would land outside it."""
    dest.mkdir(parents=True, exist_ok=True)
    base = dest.resolve()
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                bad = [m for m in zf.namelist() if not _inside(base, m)]
                if bad:
                    raise DataError(f"{archive}: member {bad[0]!r} would be written outside {dest}")
                zf.extractall(base)
        else:
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                bad = [m.name for m in members if not _inside(base, m.name) or m.issym() or m.islnk() or m.isdev()]
                if bad:
                    raise DataError(f"{archive}: member {bad[0]!r} is a link, a device or would be written outside {dest}")
                tf.extractall(base, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"{archive}: cannot extract ({exc})") from None


def _download(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(target) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
    except OSError as exc:
        raise DataError(f"{url}: download failed ({exc}); set BENCH_MIRROR to a local copy") from None


def _place(file: Path, sha256: str | None, folder: Path) -> None:
    _verify(file, sha256)
    if file.name.endswith(_ARCHIVES):
        extract(file, folder)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, folder / file.name)


def fetch(name: str, dest_root: Path, mirror: str | None = None, copy: bool = False) -> Path:
    """Fetch dataset ``name`` into ``dest_root`` and return its located dataset path.

    ``mirror`` defaults to ``BENCH_MIRROR``. A mirror folder in the data-root layout is
    symlinked (``copy=False``) or copied; a dataset already present under ``dest_root`` is
    left as it is.
    """
    card = get_card("dataset", name)
    loader = registry.create("dataset", name)
    if not isinstance(loader, CardLoader):
        raise DataError(f"{name}: an in-memory dataset, nothing to fetch")
    dest_root = Path(dest_root)
    try:
        return loader.locate(dest_root)
    except BenchError:
        pass
    mirror_dir = mirror_path(mirror if mirror is not None else os.environ.get("BENCH_MIRROR"))
    folders = _folders(name)
    if mirror_dir is not None:
        if not mirror_dir.is_dir():
            raise DataError(f"mirror {mirror_dir}: not a directory")
        for folder in folders:
            source = mirror_dir / folder
            if source.is_dir():
                target = dest_root / folder
                if target.exists() or target.is_symlink():
                    raise DataError(f"{target}: already exists but holds no complete {name}; move it away first")
                dest_root.mkdir(parents=True, exist_ok=True)
                if copy:
                    shutil.copytree(source, target, symlinks=True)
                else:
                    target.symlink_to(source.resolve(), target_is_directory=True)
                return loader.locate(dest_root)
    downloads = card.get("download") or []
    if not downloads:
        where = f"mirror {mirror_dir} has no {' or '.join(folders)} folder; " if mirror_dir is not None else ""
        raise DataError(f"{name}: {where}no direct download; get it from {card.get('source')} and place it as "
                        f"{dest_root / layouts(loader)[0].path} (see {card.path})")
    folder = dest_root / folders[0]
    for item in downloads:
        file, url, sha = item["file"], item["url"], item.get("sha256")
        if mirror_dir is not None:
            source = mirror_dir / file
            if not source.is_file():
                raise DataError(f"mirror {mirror_dir}: neither {folders[0]}/ nor {file} is there")
        else:
            source = folder / ".download" / file
            if not source.is_file():
                _download(url, source)
        _place(source, sha, folder)
    return loader.locate(dest_root)
