"""Score files: one parquet per (method, dataset[, FR model]) with provenance in its metadata.

Schema: ``image_id`` (string), ``score`` (float64, the method's *native* orientation), and
optionally ``source_sha256`` (string: the sha256 of the image file each score was computed
from, so a replaced image is re-scored instead of silently reusing its old score; absent for
imported scores and for methods that never read pixels). The parquet key-value metadata holds
method, method_version, higher_is_better, weights_sha256, fr, dataset, harness_version,
git_commit, created, device, seconds_per_image_mean/std. A file holds scores per image: a later
run adds the images it scored and keeps the others. Writes are atomic; reads validate ids and
values and fail with one line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.core.errors import DataError
from bench.core.io import atomic_path
from bench.core.paths import safe_name

REQUIRED_METADATA = ("method", "method_version", "higher_is_better", "weights_sha256", "fr", "dataset",
                     "harness_version", "git_commit", "created", "device",
                     "seconds_per_image_mean", "seconds_per_image_std")
SCHEMA = pa.schema([("image_id", pa.string()), ("score", pa.float64())])
DIGEST_COLUMN = "source_sha256"


def score_path(results: Path, method: str, dataset: str, fr: str | None, setup_tag: str = "") -> Path:
    """Where the score file of (method, dataset[, quality FR][, setup]) lives under a results folder.

    ``setup_tag`` names non-default method options or seed (``""`` for the defaults), so
    runs with other settings keep their own file instead of replacing the default one.
    """
    suffix = f"__{safe_name(fr)}" if fr else ""
    tag = f"__{setup_tag}" if setup_tag else ""
    return Path(results) / "scores" / method / f"{dataset}{suffix}{tag}.parquet"


@dataclass(frozen=True)
class ScoreTable:
    """A score file's content: ids, native scores, per-image source digests (or None), metadata."""

    ids: list[str]
    scores: np.ndarray
    digests: list[str] | None
    meta: dict[str, str]


def write_scores(path: Path, image_ids: list[str], scores: np.ndarray, metadata: dict[str, object],
                 digests: list[str] | None = None) -> None:
    """Validate and write a score file atomically; metadata values are stored as strings."""
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise DataError(f"{path}: score metadata lacks {', '.join(missing)}")
    scores = np.asarray(scores, dtype=np.float64)
    _validate(path, list(image_ids), scores)
    columns = [pa.array(list(image_ids), pa.string()), pa.array(scores, pa.float64())]
    schema = SCHEMA
    if digests is not None:
        if len(digests) != len(scores):
            raise DataError(f"{path}: {len(digests)} source digests for {len(scores)} scores")
        columns.append(pa.array(list(digests), pa.string()))
        schema = schema.append(pa.field(DIGEST_COLUMN, pa.string()))
    table = pa.Table.from_arrays(columns, schema=schema)
    table = table.replace_schema_metadata({str(k): str(v) for k, v in sorted(metadata.items())})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_scores(path: Path) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """Read and validate a score file: (image ids, native scores, metadata)."""
    table = read_score_table(path)
    return table.ids, table.scores, table.meta


def read_score_table(path: Path) -> ScoreTable:
    """Read and validate a score file, with its per-image source digests when it has them."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: score file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    if table.schema.names not in (SCHEMA.names, [*SCHEMA.names, DIGEST_COLUMN]):
        raise DataError(f"{path}: columns {table.schema.names}, expected {SCHEMA.names} (+ optional {DIGEST_COLUMN})")
    ids = [str(x) for x in table.column("image_id").to_pylist()]
    scores = table.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    _validate(path, ids, scores)
    digests = [str(x) for x in table.column(DIGEST_COLUMN).to_pylist()] if DIGEST_COLUMN in table.schema.names else None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return ScoreTable(ids, scores, digests, meta)


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
    """Scores of a score file aligned to a dataset's image list (see :func:`align_scores`)."""
    return align_scores(read_score_table(path), path, image_ids, needed)


def align_scores(table: ScoreTable, path: Path, image_ids: list[str], needed: np.ndarray, hint: str = "") -> np.ndarray:
    """Scores aligned to a dataset's image list; every image in ``needed`` must be present.

    Returns float64 [len(image_ids)] with NaN for images the file lacks that are not needed;
    ``hint`` (what to do) ends the error naming the images that lack a score.
    """
    position = {image_id: k for k, image_id in enumerate(table.ids)}
    out = np.full(len(image_ids), np.nan)
    idx = np.array([position.get(i, -1) for i in image_ids], dtype=np.int64)
    have = idx >= 0
    out[have] = table.scores[idx[have]]
    lacking = [image_ids[i] for i in needed if not have[i]]
    if lacking:
        tail = f"; {hint}" if hint else ""
        raise DataError(f"{path}: {len(lacking)} image id(s) of the protocol have no score, first: "
                        f"{', '.join(lacking[:5])}{tail}")
    return out
