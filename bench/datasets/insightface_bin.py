"""InsightFace verification bins (``lfw.bin``, ``calfw.bin``, ``cplfw.bin``, ``cfp_fp.bin``).

A bin is a pickle of ``(images, issame)``: encoded 112x112 ArcFace-aligned images (bytes, or
uint8 numpy arrays in some re-exports) and one bool per pair; pair k compares images 2k and
2k+1. Pickles can run code, so the file is read by a restricted unpickler that builds only
bytes, lists, tuples, bools and numpy arrays and refuses every other global.
Folds: see :func:`bin_folds`.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.core.errors import DataError
from bench.datasets.base import FaceDataset
from bench.datasets.protocol import PairProtocol, block_folds

N_FOLDS = 10

# The globals a bin may name: numpy array reconstruction (old and new module paths), and
# _codecs.encode, which is how protocol-2 pickles written by Python 3 rebuild ``bytes``.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "bytes"),
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"{self.source}: refused to load: the pickle names {module}.{name}, which an InsightFace bin never needs")


def read_bin(path: Path) -> tuple[list[bytes | np.ndarray], np.ndarray]:
    """The encoded images and the per-pair mated flags of a bin, validated."""
    try:
        with open(path, "rb") as fh:
            obj = _RestrictedUnpickler(fh, str(path)).load()
    except DataError:
        raise
    except Exception as exc:  # a corrupt pickle raises many kinds; all mean the same to the user
        raise DataError(f"{path}: not a readable InsightFace bin ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataError(f"{path}: expected a pickle of (images, issame), got {type(obj).__name__}")
    images, issame = obj
    if not isinstance(images, (list, tuple)) or not all(isinstance(x, (bytes, bytearray, np.ndarray)) for x in images):
        raise DataError(f"{path}: the image list must hold encoded images (bytes)")
    try:
        flags = np.asarray(issame)
    except Exception:
        raise DataError(f"{path}: the issame list is not a list of bools") from None
    if flags.ndim != 1 or flags.dtype.kind not in "bi" or (flags.dtype.kind == "i" and not np.isin(flags, (0, 1)).all()):
        raise DataError(f"{path}: the issame list is not a list of bools")
    if len(images) != 2 * len(flags):
        raise DataError(f"{path}: {len(images)} images for {len(flags)} pairs (need exactly 2 per pair)")
    return list(images), flags.astype(bool)


def decode(data: bytes | np.ndarray, where: str) -> np.ndarray:
    """An encoded image (JPEG/PNG bytes) as RGB uint8; DataError if it does not decode."""
    buf = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if image is None:
        raise DataError(f"{where}: cannot decode image (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def bin_folds(mated: np.ndarray, source: str, n_folds: int = N_FOLDS) -> tuple[np.ndarray, str]:
    """Folds 1..``n_folds`` of a bin's pairs, from its issame layout, and a note on how.

    Fold k holds the k-th of ``n_folds`` equal consecutive blocks of the mated pairs and the
    k-th of the non-mated pairs, in bin order. For the released bins, which list each fold's
    mated then non-mated pairs (LFW 300 + 300, CFP-FP 350 + 350), these are exactly
    InsightFace's 10 consecutive blocks of pairs; a bin in another order (all mated pairs first,
    say) still gets folds with both kinds, where consecutive blocks would give folds of one
    kind. A bin with fewer than ``n_folds`` pairs of a kind is refused: some fold would lack it.
    """
    counts = {kind: int(np.count_nonzero(mated == kind)) for kind in (True, False)}
    short = [("mated" if kind else "non-mated", n) for kind, n in counts.items() if n < n_folds]
    if short:
        what, n = short[0]
        raise DataError(f"{source}: only {n} {what} pair(s): cannot make {n_folds} folds that each hold both kinds")
    fold = np.empty(len(mated), dtype=np.int64)
    for kind, n in counts.items():
        fold[mated == kind] = block_folds(n, n_folds)
    if np.array_equal(fold, block_folds(len(mated), n_folds)):
        return fold, f"folds: InsightFace's {n_folds} consecutive blocks of pairs"
    return fold, (f"folds: the bin's pairs are not in per-fold blocks, so fold k = the k-th of {n_folds} consecutive "
                  "blocks of the mated pairs and of the non-mated pairs")


def load_bin(name: str, path: Path) -> FaceDataset:
    """A dataset from a bin: image ids ``<file>#000123``, decoded in memory, aligned=True.

    #images counts the bin's images (its pairs' images, with repeats); identities are not
    stored in a bin, so Table 1's identity count stays unknown. Folds: :func:`bin_folds`.
    """
    images, mated = read_bin(path)
    n_pairs = len(mated)
    fold, fold_note = bin_folds(mated, str(path))
    ids = [f"{path.name}#{k:06d}" for k in range(len(images))]
    protocol = PairProtocol(
        a=np.arange(0, 2 * n_pairs, 2, dtype=np.int64), b=np.arange(1, 2 * n_pairs, 2, dtype=np.int64),
        mated=mated, fold=fold,
    )
    return FaceDataset(
        name=name, root=path.parent, image_ids=ids, protocol=protocol, aligned=True,
        reader=lambda i: decode(images[i], f"{path}#{i:06d}"),
        n_images_total=len(images), n_identities_total=None,
        notes=[f"from InsightFace bin {path.name}: images counted in the bin (with repeats), identities unknown", fold_note],
    )
