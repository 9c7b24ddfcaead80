"""What every file-backed loader shares: finding a card's layout under the data root, listing
image folders for Table 1 totals, and checking that the protocol's images exist.

A card's ``layouts`` lists the accepted places, one per official archive as extracted (and
the folder names people commonly use), each a table ``{ archive, folder, images }``:
``folder`` is the dataset folder relative to the data root (image ids are relative to it;
``""`` is the data root itself, and it may be nested, as IJB-C's ``IJB_release/IJBC``),
``images`` the image folder inside it, or an InsightFace verification bin when it ends in
``.bin``; ``archive`` names the download the entry recognises, for ``bench datasets``. The
first entry is the recommended one and is what error messages name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.core.errors import DataError
from bench.datasets.base import DatasetLoader, FaceDataset
from bench.datasets.insightface_bin import load_bin
from bench.datasets.listing import list_images
from bench.datasets.protocol import PairProtocol

# An identity name followed by its image number (see name_before_number).
_NUMBERED = re.compile(r"(.+)[_-][0-9]+[^0-9]*")


@dataclass(frozen=True)
class Layout:
    """One accepted place of a dataset (see the module docstring)."""

    archive: str
    folder: str
    images: str

    @property
    def path(self) -> str:
        """The entry as a data-root-relative path, for messages (``lfw/lfw-deepfunneled``)."""
        return f"{self.folder}/{self.images}" if self.folder else self.images


@dataclass(frozen=True)
class Found:
    """Where a layout matched: ``folder`` holds the dataset, ``inner`` the image folder (or the
    bin file name) inside it, ``layout`` the card entry (and so the archive) it matched."""

    folder: Path
    inner: str
    layout: Layout

    @property
    def is_bin(self) -> bool:
        return self.inner.endswith(".bin")

    @property
    def images(self) -> Path:
        return self.folder / self.inner


def _relative(value: object) -> bool:
    """A relative path (``""`` = the data root) that cannot leave the data root."""
    return isinstance(value, str) and not value.startswith("/") and ".." not in value.split("/")


def layouts(loader: DatasetLoader) -> list[Layout]:
    """The card's accepted layouts, validated (see the module docstring)."""
    entries = loader.card.get("layouts") or []
    out = []
    for k, entry in enumerate(entries if isinstance(entries, list) else [None]):
        ok = isinstance(entry, dict) and set(entry) == {"archive", "folder", "images"} and isinstance(entry["archive"], str)
        if not ok or not _relative(entry["folder"]) or not _relative(entry["images"]) or not entry["images"]:
            raise DataError(f"{loader.card.path}: layouts[{k}] must be a table {{ archive, folder, images }} of relative paths")
        out.append(Layout(entry["archive"], entry["folder"].strip("/"), entry["images"].strip("/")))
    return out


class CardLoader(DatasetLoader):
    """A loader whose accepted places come from its card's ``layouts``.

    ``required`` names the protocol files that must exist for a folder layout, relative to
    the dataset folder; ``{inner}`` stands for the image folder of the matched entry.
    """

    required: tuple[str, ...] = ()

    def find(self, root: Path | None) -> Found:
        """The first layout present under ``root``; one-line DataError otherwise."""
        entries = layouts(self)
        if root is None:
            raise DataError(f"{self.card.name}: no data root given (use --data-root DIR or BENCH_DATA); see {self.card.path}")
        root = Path(root)
        incomplete: list[str] = []
        for layout in entries:
            folder, inner = root / layout.folder, layout.images
            if inner.endswith(".bin"):
                if (folder / inner).is_file():
                    return Found(folder, inner, layout)
                continue
            if not (folder / inner).is_dir():
                continue
            missing = [r.format(inner=inner) for r in self.required if not (folder / r.format(inner=inner)).is_file()]
            if not missing:
                return Found(folder, inner, layout)
            incomplete.append(f"{folder / missing[0]} is missing")
        if incomplete:
            raise DataError(f"{self.card.name}: images found but protocol file incomplete: {incomplete[0]}; see {self.card.path}")
        if not entries:
            raise DataError(f"{self.card.path}: no 'layouts' to look for")
        paths = [e.path for e in entries]
        others = f" (or {', '.join(paths[1:4])}{', ...' if len(paths) > 4 else ''})" if len(paths) > 1 else ""
        raise DataError(f"{self.card.name}: not found: expected {root / paths[0]}{others}; see {self.card.path}")

    def locate(self, root: Path) -> Path:
        found = self.find(root)
        return found.images if found.is_bin else found.folder


def check_present(name: str, folder: Path, ids: list[str], present: set[str]) -> None:
    """Raise one DataError with the count and first five missing paths (ids not in ``present``)."""
    missing = [i for i in ids if i not in present]
    if missing:
        first = ", ".join(str(folder / m) for m in missing[:5])
        raise DataError(f"{name}: {len(missing)} image file(s) named by the protocol are missing, first: {first}")


def index_pairs(names_a: list[str], names_b: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sorted unique image ids and the index arrays of each pair side into them."""
    ids = sorted(set(names_a) | set(names_b))
    lookup = {k: i for i, k in enumerate(ids)}
    a = np.fromiter((lookup[n] for n in names_a), dtype=np.int64, count=len(names_a))
    b = np.fromiter((lookup[n] for n in names_b), dtype=np.int64, count=len(names_b))
    return ids, a, b


def identities_of(ids: list[str], key) -> np.ndarray:
    """Dense identity index per image id, from ``key(image_id) -> identity name`` (sorted names)."""
    names = [key(i) for i in ids]
    uniq = {n: k for k, n in enumerate(sorted(set(names)))}
    return np.fromiter((uniq[n] for n in names), dtype=np.int64, count=len(names))


def with_totals(ds: FaceDataset, n_images: int | None, n_ids: int | None) -> FaceDataset:
    """Set the whole-dataset counts Table 1 compares with (the paper counts the whole dataset)."""
    ds.n_images_total = n_images
    ds.n_identities_total = n_ids
    return ds


def read_text(path: Path) -> str:
    """A protocol file's text; DataError if absent or not text."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: protocol file not found") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: cannot read protocol file ({exc})") from None


def build_dataset(name: str, folder: Path, image_root: str, pair_a: list[str], pair_b: list[str],
                  mated: np.ndarray, fold: np.ndarray | None, identity_of: Callable[[str], str],
                  aligned: bool, notes: list[str] | None = None) -> FaceDataset:
    """A FaceDataset of the protocol's images, with totals from listing ``folder/image_root``.

    ``pair_a``/``pair_b`` are paths relative to ``folder``; ``identity_of`` maps a path
    relative to ``image_root`` to its identity name. Missing protocol images raise one
    DataError (count and first five).
    """
    ids, a, b = index_pairs(pair_a, pair_b)
    prefix = image_root.rstrip("/") + "/" if image_root else ""
    listing = list_images(folder / image_root) if (folder / image_root).is_dir() else []
    check_present(name, folder, ids, {prefix + p for p in listing})

    def ident(path: str) -> str:
        return identity_of(path[len(prefix):] if path.startswith(prefix) else path)

    ds = FaceDataset(name=name, root=folder, image_ids=ids,
                     protocol=PairProtocol(a=a, b=b, mated=np.asarray(mated, dtype=bool), fold=fold),
                     aligned=aligned, identities=identities_of(ids, ident), notes=list(notes or []))
    return with_totals(ds, len(listing), len({identity_of(p) for p in listing}))


def first_folder(path: str) -> str:
    """Identity = the first folder of the path (``Name/Name_0001.jpg`` -> ``Name``)."""
    return path.split("/", 1)[0]


def name_before_number(path: str) -> str:
    """Identity = the file name up to its image number, as the pairs files name images
    (``Aaron_Eckhart_0001.jpg`` -> ``Aaron_Eckhart``, CPLFW's ``AJ_Cook_1.jpg`` -> ``AJ_Cook``).

    The number is the last ``_<digits>`` or ``-<digits>``, and anything but digits after it is
    dropped, so the four malformed CPLFW file names that no pair uses
    (``Landon_Donovan_3jpg.jpg``, ``Leni_Bjorklund-2.jpg``, ``Leni_Bjorklund-3.jpg``,
    ``Mike_Montgomery_3.jip.jpg``) count as the identities they show rather than as four more.
    A name without a number is its own identity.
    """
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    match = _NUMBERED.fullmatch(stem)
    return match.group(1) if match else stem


class PairsFileLoader(CardLoader):
    """A dataset whose protocol is one pairs text file beside an image folder (or a .bin).

    Subclasses set ``pairs_file``, the text parser ``parse`` (text, source name → parsed
    pairs with ``a``, ``b``, ``mated``, ``fold``), ``identity_of``, the folders released
    already aligned, and any notes on how the protocol was read.
    """

    pairs_file: str
    parse: Callable
    identity_of: Callable[[str], str] = staticmethod(first_folder)
    aligned_folders: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def load(self, root: Path) -> FaceDataset:
        found = self.find(root)
        if found.is_bin:
            return load_bin(self.card.name, found.images)
        path = found.folder / self.pairs_file
        raw = type(self).parse(read_text(path), str(path))
        prefix = found.inner + "/"
        return build_dataset(
            self.card.name, found.folder, found.inner, [prefix + p for p in raw.a], [prefix + p for p in raw.b],
            raw.mated, raw.fold, type(self).identity_of, aligned=found.inner in self.aligned_folders,
            notes=list(self.notes),
        )
