"""Faces in the report: quality-ordered image strips (cf. Fig. 6) and DifFIQA reconstruction rows (cf. Fig. 1).

Crops come from the crop cache ``<cache>/crops/<dataset>-<manifest>/``: ``<domain>.crops.npy``
(row k = image k), ``<domain>.state.npz`` (per-image status) and ``image_ids.txt`` (the ids
of the rows, written by :class:`bench.datasets.crops.CropStore`), so a report never reads the raw
dataset. Only rows whose crop was made (face detected, or the aligner's no-face fallback
crop) are shown; images without one are skipped.

Each gallery is drawn twice from the same :class:`Gallery`: in HTML as small JPEG thumbnails
(data: URIs, so a full report stays a few MB), and as one composed JPEG for LaTeX and
Markdown (:func:`bench.report.figures.gallery_jpeg`). Both are deterministic: the same cache
and scores give the same bytes.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from bench.core.cards import load_cards, paper_name
from bench.core.errors import DataError
from bench.datasets.crops import DETECTED, FALLBACK, IMAGE_IDS_FILE
from bench.report.figures import gallery_jpeg
from bench.report.tables import fr_display, ordered
from bench.results.published import PAPER_DATASETS, PAPER_METHODS

THUMB_PX = 72
JPEG_QUALITY = 80
LOWEST = 8
DEFAULT_STRIP = 8
MAX_STRIP = 32
# Fig. 6 of the paper orders XQLFW by DifFIQA: the side-by-side figure does the same when it can.
REFERENCE_METHOD = "DifFIQA"
EXAMPLES_SUFFIX = ".examples.npz"
# Columns of a reconstruction row: (array in the examples file, its Eq. 7 cosine name, label).
EXAMPLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("input", "", "input x"),
    ("x_t", "x_t", "noised x_t"),
    ("recon", "recon", "reconstruction"),
    ("flip_x_t", "flip_x_t", "flipped x_t"),
    ("flip_recon", "flip_recon", "flipped reconstr."),
)
EXAMPLE_KEYS: tuple[str, ...] = ("image_id", "input", "x_t", "recon", "cos", "cos_names", "score", "meta")
_MANIFEST = re.compile(r"-[0-9a-f]{16}")


@dataclass(frozen=True, eq=False)
class Tile:
    """One cell of a gallery: a crop (``pixels``, full size, for the composed figure; ``jpeg``,
    the HTML thumbnail) or text only (``pixels`` None), with its label lines."""

    lines: tuple[str, ...]
    pixels: np.ndarray | None = None
    jpeg: bytes = b""
    alt: str = ""

    @property
    def uri(self) -> str:
        """The thumbnail as a data: URI."""
        return "data:image/jpeg;base64," + base64.b64encode(self.jpeg).decode("ascii")


@dataclass(frozen=True, eq=False)
class GalleryRow:
    """A labelled row of tiles."""

    label: tuple[str, ...]
    tiles: tuple[Tile, ...]


@dataclass(frozen=True, eq=False)
class Gallery:
    """Rows of tiles with a caption; ``jpeg`` is the composed figure written as figures/<name>.jpg."""

    name: str
    title: str
    caption: str
    rows: tuple[GalleryRow, ...]
    jpeg: bytes = field(default=b"", repr=False)


def thumbnail(crop: np.ndarray, size: int = THUMB_PX) -> bytes:
    """A ``size`` px JPEG of an RGB uint8 crop (PIL, fixed settings: the same crop gives the same bytes)."""
    image = Image.fromarray(np.ascontiguousarray(crop, dtype=np.uint8), "RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _tile(crop: np.ndarray, lines: Sequence[str], alt: str) -> Tile:
    return Tile(tuple(lines), np.asarray(crop), thumbnail(crop), alt)


def _composed(gallery: Gallery) -> Gallery:
    return Gallery(gallery.name, gallery.title, gallery.caption, gallery.rows, gallery_jpeg(gallery.rows))


def _file_name(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", p) for p in parts)


@dataclass(frozen=True, eq=False)
class CropSource:
    """Cached crops of one dataset in one domain: memory-mapped rows, their ids and which rows hold a crop."""

    folder: Path
    domain: str
    crops: np.ndarray
    row: dict[str, int]
    usable: np.ndarray

    def has(self, image_id: str) -> bool:
        k = self.row.get(image_id)
        return k is not None and bool(self.usable[k])

    def crop(self, image_id: str) -> np.ndarray:
        return np.asarray(self.crops[self.row[image_id]])


def crop_domains(method_id: str, fr_id: str) -> list[str]:
    """The crop domains a score file was made from, most likely first: the method card's own
    ``input.domain``, then its FR card's ``domain`` (cards only: no model is imported)."""
    out = []
    card = load_cards("method").get(method_id)
    wanted = str(card.get("input", {}).get("domain", "fr")) if card is not None else "fr"
    if wanted != "fr":
        out.append(wanted)
    fr_card = load_cards("fr").get(fr_id.split(":", 1)[0]) if fr_id else None
    if fr_card is not None and fr_card.get("domain"):
        out.append(str(fr_card.get("domain")))
    return out


def find_crops(cache: Path, dataset_id: str, domains: Sequence[str], image_ids: Sequence[str]) -> CropSource | str:
    """The cached crops of ``dataset_id`` that cover most of ``image_ids``, in the first of
    ``domains`` present (else any cached domain, by name), or a sentence saying why there are none."""
    root = Path(cache) / "crops"
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(dataset_id + "-")
                     and _MANIFEST.fullmatch(p.name[len(dataset_id):])) if root.is_dir() else []
    if not folders:
        return f"no cached crops of {dataset_id}"
    wanted = set(image_ids)
    best: tuple[int, Path, list[str], str] | None = None
    for folder in folders:
        ids_file = folder / IMAGE_IDS_FILE
        cached = sorted(p.name[: -len(".crops.npy")] for p in folder.glob("*.crops.npy"))
        present = [d for d in [*domains, *cached] if d in cached and (folder / f"{d}.state.npz").is_file()]
        if not ids_file.is_file() or not present:
            continue
        ids = ids_file.read_text(encoding="utf-8").splitlines()
        overlap = len(wanted.intersection(ids))
        if best is None or overlap > best[0]:
            best = (overlap, folder, ids, present[0])
    if best is None:
        return (f"the cached crops of {dataset_id} have no {IMAGE_IDS_FILE} (caches made before it existed: "
                "any `bench run` on the dataset writes it)")
    _, folder, ids, domain = best
    crops_path, state_path = folder / f"{domain}.crops.npy", folder / f"{domain}.state.npz"
    try:
        crops = np.load(crops_path, mmap_mode="r")
        with np.load(state_path) as state:
            status = state["status"].copy()
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{crops_path}: cannot read the crop cache ({exc}); delete {folder}") from exc
    if crops.ndim != 4 or crops.shape[0] != len(ids) or len(status) != len(ids) or crops.shape[-1] != 3:
        raise DataError(f"{folder}: {IMAGE_IDS_FILE} names {len(ids)} images but {crops_path.name} holds "
                        f"{crops.shape[0]} rows and the state {len(status)}; delete the folder")
    return CropSource(folder, domain, crops, {i: k for k, i in enumerate(ids)}, np.isin(status, (DETECTED, FALLBACK)))


def ranked(group: pd.DataFrame) -> pd.DataFrame:
    """One method's scores on one dataset, lowest quality first (ties by image id), with ``quantile``:
    the image's ordinal rank over all scored images, scaled to [0, 1]."""
    out = group.sort_values(["score", "image_id"], kind="stable").reset_index(drop=True)
    n = len(out)
    return out.assign(rank=np.arange(n), quantile=np.arange(n) / max(n - 1, 1))


def pick_quantiles(order: pd.DataFrame, usable: np.ndarray, n: int) -> list[int]:
    """Positions in ``order`` (from :func:`ranked`) of ``n`` images at evenly spaced quantiles,
    lowest to highest: for each target the nearest image with a crop not picked yet."""
    candidates = np.flatnonzero(usable)
    if len(candidates) <= n:
        return candidates.tolist()
    quantiles = order["quantile"].to_numpy()[candidates]
    picked: list[int] = []
    for target in np.linspace(0.0, 1.0, n):
        distance = np.abs(quantiles - target)
        distance[np.isin(candidates, picked)] = np.inf
        picked.append(int(candidates[int(np.argmin(distance))]))
    return sorted(picked)


def _native(row: pd.Series) -> float:
    return float(row["score"]) if row["higher_is_better"] else -float(row["score"])


def _score_text(value: float) -> str:
    return f"{value:.4g}"


def method_gallery(order: pd.DataFrame, source: CropSource, n: int) -> Gallery | None:
    """One method on one dataset: a row at ``n`` evenly spaced quantiles and a row of its
    :data:`LOWEST` lowest-quality images (None when no scored image has a crop)."""
    usable = np.array([source.has(i) for i in order["image_id"]], dtype=bool)
    if not usable.any():
        return None
    first = order.iloc[0]
    quantile_row = GalleryRow(("quantiles",), tuple(
        _tile(source.crop(r["image_id"]), (f"q = {r['quantile']:.2f}", _score_text(_native(r))), r["image_id"])
        for r in (order.iloc[k] for k in pick_quantiles(order, usable, n))))
    lowest_row = GalleryRow((f"lowest {LOWEST}",), tuple(
        _tile(source.crop(r["image_id"]), (f"#{int(r['rank']) + 1} of {len(order)}", _score_text(_native(r))), r["image_id"])
        for r in (order.iloc[k] for k in np.flatnonzero(usable)[:LOWEST])))
    orient = "higher" if first["higher_is_better"] else "lower"
    fr = f" (scores with {fr_display(first['fr'])})" if first["fr"] else ""
    caption = (f"{first['method']}{fr} on {first['dataset']}: top, {len(quantile_row.tiles)} crops at evenly spaced "
               f"quantiles of its {len(order):,} scores, lowest quality left (q = rank / (n - 1)); bottom, its "
               f"{len(lowest_row.tiles)} lowest-quality crops (#rank). Under each: the native score ({orient} = "
               f"better). Crops: cache {source.folder.name}, domain {source.domain}.")
    return _composed(Gallery(_file_name("strip", str(first["dataset_id"]), str(first["method_id"])),
                             f"{first['method']} on {first['dataset']}", caption, (quantile_row, lowest_row)))


def methods_gallery(orders: dict[str, pd.DataFrame], source: CropSource, n: int) -> Gallery | None:
    """Several methods on the same images of one dataset.

    The images are picked at evenly spaced quantiles of one method (DifFIQA when present, as
    in Fig. 6, else the first in the paper's order); each further row gives another method's
    native score and rank quantile of the same image. Drawing the same faces once, with
    every method's verdict under them, shows directly whether the methods rank alike (the
    quantiles of a row rise left to right) — which the paper's layout of separate top and
    bottom rows per method, on different faces, can only suggest; those per-method rows are
    the single-method strips.
    """
    methods = ordered(orders, PAPER_METHODS)
    reference = REFERENCE_METHOD if REFERENCE_METHOD in orders else methods[0]
    order = orders[reference]
    usable = np.array([source.has(i) for i in order["image_id"]], dtype=bool)
    if not usable.any():
        return None
    picked = [order.iloc[k] for k in pick_quantiles(order, usable, n)]
    rows = [GalleryRow((reference, "(picks the images)"), tuple(
        _tile(source.crop(r["image_id"]), (f"q = {r['quantile']:.2f}", _score_text(_native(r))), r["image_id"])
        for r in picked))]
    for method in (m for m in methods if m != reference):
        by_id = orders[method].set_index("image_id")
        tiles = []
        for r in picked:
            if r["image_id"] in by_id.index:
                other = by_id.loc[r["image_id"]]
                tiles.append(Tile((f"q = {other['quantile']:.2f}", _score_text(_native(other)))))
            else:
                tiles.append(Tile(("not scored",)))
        rows.append(GalleryRow((method,), tuple(tiles)))
    dataset = str(order.iloc[0]["dataset"])
    caption = (f"The same {dataset} crops under every method: picked at evenly spaced quantiles of {reference} "
               "(first row); each other row gives that method's rank quantile q and native score of the same image. "
               "Methods that rank alike show q rising left to right in every row.")
    return _composed(Gallery(_file_name("strip", str(order.iloc[0]["dataset_id"]), "methods"),
                             f"Methods side by side on {dataset}", caption, tuple(rows)))


def strip_galleries(scores: pd.DataFrame, cache: Path, n: int = DEFAULT_STRIP) -> tuple[list[Gallery], list[str]]:
    """Per (dataset, method) a strip, and per dataset with several methods the side-by-side
    figure, from :func:`bench.report.frames.score_frame`; and a note per dataset without crops."""
    galleries: list[Gallery] = []
    notes: list[str] = []
    for dataset in ordered(scores["dataset"], PAPER_DATASETS):
        group = scores[scores["dataset"] == dataset]
        orders = {m: ranked(g) for m, g in group.groupby("method", sort=True)}
        sources: dict[str, CropSource] = {}
        for method in ordered(orders, PAPER_METHODS):
            first = orders[method].iloc[0]
            found = find_crops(cache, str(first["dataset_id"]), crop_domains(str(first["method_id"]), str(first["fr_id"])),
                               orders[method]["image_id"].tolist())
            if isinstance(found, str):
                notes.append(f"{dataset}, {method}: {found}.")
                continue
            sources[method] = found
            gallery = method_gallery(orders[method], found, n)
            if gallery is None:
                notes.append(f"{dataset}, {method}: none of its scored images has a cached crop.")
            else:
                galleries.append(gallery)
        if len(orders) > 1 and sources:
            reference = REFERENCE_METHOD if REFERENCE_METHOD in orders else ordered(orders, PAPER_METHODS)[0]
            source = sources.get(reference)
            side = methods_gallery(orders, source, n) if source is not None else None
            if side is not None:
                galleries.append(side)
    return galleries, notes


def example_files(results: Path) -> list[Path]:
    """The DifFIQA reconstruction examples files under ``results/scores`` (sorted)."""
    return sorted((Path(results) / "scores").glob(f"**/*{EXAMPLES_SUFFIX}"))


def _load_examples(path: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """The arrays of one examples file, checked against the contract, and its meta JSON."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz examples file ({exc})") from exc
    missing = [k for k in EXAMPLE_KEYS if k not in data]
    if missing:
        raise DataError(f"{path}: examples file lacks {', '.join(missing)}; re-run with --method-option save_examples=K")
    k = len(data["image_id"])
    images = [c for c, _, _ in EXAMPLE_COLUMNS if c in data]
    bad = [c for c in images if data[c].dtype != np.uint8 or data[c].ndim != 4 or data[c].shape[0] != k
           or data[c].shape[-1] != 3]
    names = [str(n) for n in data["cos_names"]]
    if bad or data["cos"].shape != (k, len(names)) or data["score"].shape != (k,):
        raise DataError(f"{path}: arrays do not match the examples contract ({k} images: input/x_t/recon/flip_* "
                        f"uint8 [K, H, W, 3], cos [K, C] with C = len(cos_names), score [K]); bad: "
                        f"{', '.join(bad) or 'cos/score shapes'}")
    try:
        meta = json.loads(str(data["meta"][()]))
    except (json.JSONDecodeError, IndexError, ValueError) as exc:
        raise DataError(f"{path}: meta is not a JSON object ({exc})") from exc
    if not isinstance(meta, dict):
        raise DataError(f"{path}: meta is not a JSON object")
    return data, meta


def example_gallery(path: Path, results: Path) -> Gallery:
    """One examples file as a row per image: input, x_t, reconstruction, flipped x_t and
    flipped reconstruction (those present), each labelled with its Eq. 7 cosine to the input."""
    data, meta = _load_examples(path)
    names = [str(n) for n in data["cos_names"]]
    columns = [(c, key, label) for c, key, label in EXAMPLE_COLUMNS if c in data]
    rows = []
    for i, image_id in enumerate(str(x) for x in data["image_id"]):
        cos = dict(zip(names, (float(v) for v in data["cos"][i]), strict=True))
        label = [image_id, f"score {_score_text(float(data['score'][i]))}"]
        if "flip" in cos:
            label.append(f"cos flip {cos['flip']:.3f}")
        rows.append(GalleryRow(tuple(label), tuple(
            _tile(data[c][i], (title, f"cos {cos[key]:.3f}") if key in cos else (title,), f"{image_id} {c}")
            for c, key, title in columns)))
    method = paper_name("method", str(meta.get("method", path.parent.name)))
    where = ", ".join(f"{k} {meta[k]}" for k in ("dataset", "fr", "t", "repeats", "seed") if k in meta)
    caption = (f"{method} reconstructions (cf. Fig. 1, right; {where}): per image its crop x, the noised x_t, the "
               "reconstruction and, with flipping, the flipped image's x_t and reconstruction (shown mirrored), of the "
               "first repetition. 'cos' is the cosine similarity of each image's embedding to that of x (the pairs of "
               f"Eq. 7: {', '.join(names)}); 'score' is the image's quality score over all repetitions.")
    rel = path.relative_to(Path(results) / "scores")
    stem = str(rel)[: -len(EXAMPLES_SUFFIX)]
    return _composed(Gallery(_file_name("recon", *stem.split("/")), f"{method} reconstructions", caption, tuple(rows)))
