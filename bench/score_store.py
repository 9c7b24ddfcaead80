"""Score files: one parquet per (method, dataset[, FR model]) with provenance in its metadata.

Schema: ``image_id`` (string), ``score`` (float64, the method's *native* orientation). The
parquet key-value metadata holds method, method_version, higher_is_better, weights_sha256,
fr, dataset, harness_version, git_commit, created, device, seconds_per_image_mean/std.
Writes are atomic; reads validate ids and values and fail with one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.errors import DataError
from bench.io import atomic_path
from bench.paths import safe_name

REQUIRED_METADATA = ("method", "method_version", "higher_is_better", "weights_sha256", "fr", "dataset",
                     "harness_version", "git_commit", "created", "device",
                     "seconds_per_image_mean", "seconds_per_image_std")
SCHEMA = pa.schema([("image_id", pa.string()), ("score", pa.float64())])


def score_path(results: Path, method: str, dataset: str, fr: str | None) -> Path:
    """Where the score file of (method, dataset[, fr]) lives under a results folder."""
    suffix = f"__{safe_name(fr)}" if fr else ""
    return Path(results) / "scores" / method / f"{dataset}{suffix}.parquet"


def write_scores(path: Path, image_ids: list[str], scores: np.ndarray, metadata: dict[str, object]) -> None:
    """Validate and write a score file atomically; metadata values are stored as strings."""
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise DataError(f"{path}: score metadata lacks {', '.join(missing)}")
    scores = np.asarray(scores, dtype=np.float64)
    _validate(path, list(image_ids), scores)
    table = pa.Table.from_arrays([pa.array(list(image_ids), pa.string()), pa.array(scores, pa.float64())], schema=SCHEMA)
    table = table.replace_schema_metadata({str(k): str(v) for k, v in sorted(metadata.items())})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_scores(path: Path) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """Read and validate a score file: (image ids, native scores, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: score file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    if table.schema.names != SCHEMA.names:
        raise DataError(f"{path}: columns {table.schema.names}, expected {SCHEMA.names}")
    ids = [str(x) for x in table.column("image_id").to_pylist()]
    scores = table.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    _validate(path, ids, scores)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return ids, scores, meta


def _validate(path: Path, ids: list[str], scores: np.ndarray) -> None:
    if len(ids) != len(scores):
        raise DataError(f"{path}: {len(ids)} ids but {len(scores)} scores")
    unique, counts = np.unique(np.asarray(ids, dtype=object).astype(str), return_counts=True)
    if np.any(counts > 1):
        dup = unique[counts > 1]
        raise DataError(f"{path}: {len(dup)} duplicate image id(s), first: {', '.join(dup[:5])}")
    bad = ~np.isfinite(scores)
    if np.any(bad):
        first = ", ".join(ids[i] for i in np.flatnonzero(bad)[:5])
        raise DataError(f"{path}: {int(bad.sum())} score(s) are NaN or infinite, first: {first}")


def scores_for(path: Path, image_ids: list[str], needed: np.ndarray) -> np.ndarray:
    """Scores aligned to a dataset's image list; every image in ``needed`` must be present.

    Returns float64 [len(image_ids)] with NaN for images the file lacks that are not needed.
    """
    ids, scores, _ = read_scores(path)
    position = {image_id: k for k, image_id in enumerate(ids)}
    out = np.full(len(image_ids), np.nan)
    idx = np.array([position.get(i, -1) for i in image_ids])
    have = idx >= 0
    out[have] = scores[idx[have]]
    lacking = [image_ids[i] for i in needed if not have[i]]
    if lacking:
        raise DataError(f"{path}: {len(lacking)} image id(s) of the protocol have no score, first: {', '.join(lacking[:5])}")
    return out
