"""``bench import-scores``: per-image scores written by a method's official code → score file.

Accepted inputs:

* text (``.csv``, ``.txt``, anything not ``.npy``): one ``path score`` entry per line, split
  at the *last* separator, which is ``;`` (FaceQnet writes ``img;score``), ``,`` or whitespace,
  detected from the first data line, so paths may contain spaces. An optional header line (its
  score field is not a number) is allowed first; blank lines and ``#`` comments are skipped.
* ``.npy`` of N scores (shape [N] or [N, 1]) plus ``list_file``: N lines, each one image path
  (whole line, so paths may contain spaces), in the order of the array.

Each path is matched to the dataset's image ids (paths relative to the dataset folder):
separators are normalised to ``/``; ``/data/lfw/A/A_0001.jpg``, ``A/A_0001.jpg`` and (when the
file name is unique) ``A_0001.jpg`` or ``Samples/A_0001.jpg`` (a folder the dataset does not
have) all match ``A/A_0001.jpg``, but ``B/A_0001.jpg`` (the file under another of the dataset's
identity folders) matches nothing. An entry matching no id or
several equally well, two entries for one id, a non-finite score, or an image the protocol
uses left without a score is an error naming the file, the count and the first five entries.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cards import get_card
from bench.core.errors import DataError
from bench.core.io import sha256_file
from bench.core.provenance import base_metadata
from bench.datasets.base import FaceDataset


def _first(items: list[str]) -> str:
    return ", ".join(items[:5])


def _parse_text(file: Path) -> list[tuple[str, float, int]]:
    """(path, score, line number) entries of a ``path score`` text file."""
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: cannot read as UTF-8 text ({exc})") from None
    entries: list[tuple[str, float, int]] = []
    sep: str | None = None
    bad: list[str] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if sep is None:
            sep = ";" if ";" in line else "," if "," in line else ""
        parts = line.rsplit(sep, 1) if sep else line.rsplit(None, 1)
        if len(parts) != 2 or not parts[0].strip():
            bad.append(f"line {number}: {line[:60]!r}")
            continue
        try:
            score = float(parts[1])
        except ValueError:
            if not entries and not bad:  # a header line
                continue
            bad.append(f"line {number}: {line[:60]!r}")
            continue
        entries.append((parts[0].strip().strip('"'), score, number))
    if bad:
        raise DataError(f"{file}: {len(bad)} line(s) are not 'path score', first: {_first(bad)}")
    if not entries:
        raise DataError(f"{file}: no 'path score' entries found")
    return entries


def _parse_npy(file: Path, list_file: Path | None) -> list[tuple[str, float, int]]:
    """(path, score, list line) entries of a scores.npy + image list pair."""
    if list_file is None:
        raise DataError(f"{file}: a .npy of scores needs the image list (--list FILE) naming its rows")
    try:
        scores = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{file}: not a readable .npy array ({exc})") from None
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim != 1 or not np.issubdtype(scores.dtype, np.number):
        raise DataError(f"{file}: expected a numeric array of shape [N] or [N, 1], got {scores.dtype} {list(scores.shape)}")
    try:
        rows = [(n, line.strip()) for n, line in enumerate(list_file.read_text(encoding="utf-8-sig").splitlines(), start=1)]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{list_file}: cannot read the image list ({exc})") from None
    rows = [(n, line) for n, line in rows if line and not line.startswith("#")]
    if len(rows) != len(scores):
        raise DataError(f"{list_file}: {len(rows)} image paths but {file} holds {len(scores)} scores")
    return [(path, float(s), n) for (n, path), s in zip(rows, scores)]


def _components(path: str) -> tuple[str, ...]:
    parts = path.replace("\\", "/").split("/")
    return tuple(p for p in parts if p not in ("", "."))


class _Matcher:
    """Maps a path to the one dataset id it names.

    A path names an id when it ends with the whole id (``/data/lfw/A/A_0001.jpg``), or with a
    trailing part of it preceded by nothing (``A_0001.jpg``) or by a folder the dataset does
    not have at that place (FaceQnet's flat ``.\\Samples\\A_0001.jpg``). A path whose folder is
    another of the dataset's own (``B/A_0001.jpg``, B an identity) contradicts the id and
    names nothing, however unique its file name.
    """

    def __init__(self, image_ids: list[str]) -> None:
        self.by_suffix: dict[tuple[str, ...], list[int]] = defaultdict(list)
        self.lengths: list[int] = []
        # folders[j]: the names the dataset has j components from the end (2 = an image's folder).
        self.folders: dict[int, set[str]] = defaultdict(set)
        for index, image_id in enumerate(image_ids):
            comps = _components(image_id)
            self.lengths.append(len(comps))
            for k in range(1, len(comps) + 1):
                self.by_suffix[comps[-k:]].append(index)
                if k > 1:
                    self.folders[k].add(comps[-k])
        self.depth = max(self.lengths, default=0)

    def match(self, path: str) -> tuple[int | None, int]:
        """(index or None, number of ids the path names equally well; 0 = none)."""
        comps = _components(path)
        for k in range(min(len(comps), self.depth), 0, -1):
            # An id longer than k differs from the path just before these k components.
            contradicts = len(comps) > k and comps[-k - 1] in self.folders[k + 1]
            hits = [i for i in self.by_suffix.get(comps[-k:], ()) if self.lengths[i] == k or not contradicts]
            if hits:
                return (hits[0], 1) if len(hits) == 1 else (None, len(hits))
        return None, 0

    def same_name(self, path: str) -> list[int]:
        """Ids whose file name is ``path``'s (to say where a mismatched file was expected)."""
        comps = _components(path)
        return list(self.by_suffix.get(comps[-1:], ())) if comps else []


def import_scores(method: str, dataset: FaceDataset, file: Path, list_file: Path | None,
                  lower_is_better: bool | None) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """Scores of ``method`` on ``dataset`` from an official-code output file.

    Returns (image ids in dataset order, native scores float64, score-file metadata).
    ``lower_is_better`` (None: take the card's ``higher_is_better``) overrides the card's
    orientation; the choice and its source are recorded in the metadata.
    """
    card = get_card("method", method)
    file, list_file = Path(file), (Path(list_file) if list_file is not None else None)
    if not file.is_file():
        raise DataError(f"{file}: score file not found")
    entries = _parse_npy(file, list_file) if file.suffix.lower() == ".npy" else _parse_text(file)

    nonfinite = [f"{p} ({s})" for p, s, _ in entries if not np.isfinite(s)]
    if nonfinite:
        raise DataError(f"{file}: {len(nonfinite)} score(s) are NaN or infinite, first: {_first(nonfinite)}")
    matcher = _Matcher(dataset.image_ids)
    unmatched: list[str] = []
    ambiguous: list[str] = []
    owner: dict[int, str] = {}
    duplicated: list[str] = []
    scores = np.full(len(dataset), np.nan)
    for path, score, _ in entries:
        index, ties = matcher.match(path)
        if index is None:
            (ambiguous if ties else unmatched).append(path if not ties else f"{path} ({ties} ids)")
        elif index in owner:
            duplicated.append(f"{dataset.image_ids[index]} ({owner[index]}, {path})")
        else:
            owner[index] = path
            scores[index] = score
    if unmatched:
        elsewhere = [f"{p} (the dataset's is {dataset.image_ids[matcher.same_name(p)[0]]})" for p in unmatched
                     if matcher.same_name(p)]
        hint = f"; a file name of the dataset under another folder: {_first(elsewhere)}" if elsewhere else ""
        raise DataError(f"{file}: {len(unmatched)} path(s) match no image of dataset {dataset.name}, "
                        f"first: {_first(unmatched)}{hint}")
    if ambiguous:
        raise DataError(f"{file}: {len(ambiguous)} path(s) match several images of dataset {dataset.name}, first: {_first(ambiguous)}")
    if duplicated:
        raise DataError(f"{file}: {len(duplicated)} image(s) of dataset {dataset.name} have several scores, first: {_first(duplicated)}")
    needed = dataset.protocol.used_images()
    lacking = [dataset.image_ids[int(i)] for i in needed if int(i) not in owner]
    if lacking:
        raise DataError(f"{file}: {len(lacking)} image(s) used by the {dataset.name} protocol have no score, first: {_first(lacking)}")

    keep = sorted(owner)
    higher = bool(card.get("higher_is_better")) if lower_is_better is None else not lower_is_better
    meta: dict[str, Any] = {
        "method": card.name, "method_version": str(card.get("version")), "higher_is_better": higher,
        "orientation_source": "card" if lower_is_better is None else ("--lower-is-better" if lower_is_better else "--higher-is-better"),
        "weights_sha256": "imported", "fr": "unknown (imported)", "dataset": dataset.name,
        **base_metadata("cpu"),
        "device": "imported (scores computed by the official code)",
        "seconds_per_image_mean": "nan", "seconds_per_image_std": "nan",
        "imported_from": str(file), "imported_sha256": sha256_file(file), "imported_entries": len(entries),
    }
    if list_file is not None:
        meta.update(imported_list=str(list_file), imported_list_sha256=sha256_file(list_file))
    return [dataset.image_ids[i] for i in keep], scores[keep], meta
