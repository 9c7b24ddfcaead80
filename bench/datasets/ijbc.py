"""IJB-C 1:1 template verification from InsightFace's IJB release (``IJB_release/IJBC/``: ``meta/`` +
``loose_crop/``).

``ijbc_face_tid_mid.txt``: image name, template id, media id; ``ijbc_template_pair_label.txt``:
template 1, template 2, label (15.6 M lines, read vectorised with pandas' C parser);
``ijbc_name_5pts_score.txt``: image name, 5 landmarks (x, y), detector score. Subjects of
the protocol are templates (:class:`bench.datasets.protocol.Templates`); subject identities are not
in these files, so Table 1's identity count stays unknown.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import DataError
from bench.core.registry import register_dataset
from bench.datasets.base import FaceDataset
from bench.datasets.common import CardLoader, check_present
from bench.datasets.protocol import PairProtocol, Templates

FACES = "meta/ijbc_face_tid_mid.txt"
PAIRS = "meta/ijbc_template_pair_label.txt"
LANDMARKS = "meta/ijbc_name_5pts_score.txt"


def _first_bad_line(path: Path, n_tokens: int, numeric_from: int) -> str:
    """Locate the first malformed line (only called after the fast parser failed)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for no, line in enumerate(fh, 1):
            tokens = line.split()
            if not tokens:
                continue
            ok = len(tokens) == n_tokens
            if ok:
                try:
                    [float(t) for t in tokens[numeric_from:]]
                except ValueError:
                    ok = False
            if not ok:
                shown = line.rstrip("\n")
                return f"{path}:{no}: expected {n_tokens} whitespace-separated fields: {shown[:80]!r}"
    return f"{path}: cannot parse"


def _first_line_tokens(path: Path) -> int | None:
    """The number of fields on the first non-blank line (None for an empty file)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return next((len(line.split()) for line in fh if line.strip()), None)
    except OSError as exc:
        raise DataError(f"{path}: cannot read protocol file ({exc.strerror or exc})") from None


def read_table(path: Path, names: list[str], dtypes: dict[str, type]) -> pd.DataFrame:
    """A whitespace-separated table parsed by pandas' C engine; DataError ``file:line`` on bad input.

    Fields may be separated by runs of spaces or tabs and lines may end in spaces (the released
    meta files are read this way by the official scripts' ``str.split``).
    """
    numeric_from = 1 if names[0] == "name" else 0
    # The C parser takes a first line with extra fields as the row shape and drops the extras;
    # every later line of the wrong length is an error, so only the first needs this check.
    if _first_line_tokens(path) not in (None, len(names)):
        raise DataError(_first_bad_line(path, len(names), numeric_from))
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, names=names, dtype=dtypes, engine="c",
                         index_col=False, on_bad_lines="error")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OverflowError, UnicodeDecodeError):
        raise DataError(_first_bad_line(path, len(names), numeric_from)) from None
    if df.isna().to_numpy().any():
        raise DataError(_first_bad_line(path, len(names), numeric_from))
    return df


def read_pairs(path: Path, template_ids: np.ndarray) -> PairProtocol:
    """The template pairs as dense template indices (vectorised, no object per pair)."""
    df = read_table(path, ["t1", "t2", "label"], {"t1": np.int64, "t2": np.int64, "label": np.int64})
    labels = df["label"].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        row = int(np.flatnonzero(~np.isin(labels, (0, 1)))[0])
        raise DataError(f"{path}:{row + 1}: label must be 0 or 1, got {labels[row]}")
    sides = []
    for col in ("t1", "t2"):
        t = df[col].to_numpy()
        idx = np.searchsorted(template_ids, t)
        bad = (idx >= len(template_ids)) | (template_ids[np.minimum(idx, len(template_ids) - 1)] != t)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}:{row + 1}: template {t[row]} is not in {FACES}")
        sides.append(idx.astype(np.int64))
    return PairProtocol(a=sides[0], b=sides[1], mated=labels == 1)


@register_dataset("ijb-c")
class IJBC(CardLoader):
    required = (FACES, PAIRS, LANDMARKS)

    def load(self, root: Path) -> FaceDataset:
        found = self.find(root)
        faces = read_table(found.folder / FACES, ["name", "tid", "mid"], {"name": str, "tid": np.int64, "mid": np.int64})
        names, image = np.unique(faces["name"].to_numpy(dtype=str), return_inverse=True)
        template_ids, template = np.unique(faces["tid"].to_numpy(), return_inverse=True)
        templates = Templates(image=image.astype(np.int64), template=template.astype(np.int64),
                              media=faces["mid"].to_numpy(), template_ids=template_ids)
        protocol = read_pairs(found.folder / PAIRS, template_ids)
        protocol = PairProtocol(protocol.a, protocol.b, protocol.mated, None, templates)
        marks = read_table(found.folder / LANDMARKS, ["name", *[f"v{k}" for k in range(11)]],
                           {"name": str, **{f"v{k}": np.float64 for k in range(11)}})
        landmarks = np.full((len(names), 5, 2), np.nan, dtype=np.float32)
        pos = pd.Index(marks["name"]).get_indexer(names)
        has = pos >= 0
        landmarks[has] = marks[[f"v{k}" for k in range(10)]].to_numpy(np.float32)[pos[has]].reshape(-1, 5, 2)
        ids = [f"{found.inner}/{n}" for n in names]
        present = {f"{found.inner}/{e.name}" for e in os.scandir(found.images) if e.is_file()}
        check_present(self.card.name, found.folder, ids, present)
        notes = [f"{len(template_ids)} templates from {len(names)} images; identities are not in the 1:1 meta files"]
        if not has.all():
            notes.append(f"{int((~has).sum())} image(s) without released landmarks: detected by the aligner")
        return FaceDataset(
            name=self.card.name, root=found.folder, image_ids=ids, protocol=protocol, landmarks=landmarks,
            n_images_total=len(names), n_identities_total=None, notes=notes,
        )
