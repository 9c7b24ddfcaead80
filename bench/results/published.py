"""Published reference numbers (transcribed paper tables), loaded as pandas DataFrames.

These are reference data to compare reproductions against, never outputs of the harness.
Each source lives in ``results/published/<source>/`` with a ``NOTES.md`` describing how the
numbers were transcribed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.core import paths
from bench.core.errors import DataError
from bench.results.table import read_checked_csv

# Shipped package data (bench.core.resources): the checkout's folder or the wheel's copy.
PUBLISHED_DIR: Path = paths.PUBLISHED_DIR
DEFAULT_SOURCE = "diffiqa_ijcb2023"

PAPER_METHODS: tuple[str, ...] = (
    "FaceQnet",
    "SDD-FIQA",
    "PFE",
    "PCNet",
    "MagFace",
    "LightQNet",
    "SER-FIQ",
    "FaceQAN",
    "CR-FIQA",
    "FaceQgen",
    "DifFIQA",
    "DifFIQA(R)",
)
PAPER_DATASETS: tuple[str, ...] = ("Adience", "CALFW", "CFP-FP", "CPLFW", "IJB-C", "LFW", "XQLFW")
PAPER_FR: tuple[str, ...] = ("adaface", "arcface", "cosface", "curricularface")
PAPER_DISCARDS: tuple[float, ...] = (0.2, 0.3)
MEAN_COLUMN = "mean"

PAUC_COLUMNS: tuple[str, ...] = ("discard", "fr", "method", "dataset", "pauc")

# Expected columns per table: "numeric" columns become floats, "integer" ones int64, the rest
# stay text.
TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "table1_datasets": {
        "columns": (
            "dataset",
            "images",
            "identities",
            "mated",
            "nonmated",
            "images_are_templates",
            "pose",
            "occlusion_expression",
            "blur_resolution_noise",
            "scale",
        ),
        "numeric": (),
        "integer": ("images", "identities", "mated", "nonmated"),
    },
    "table3_runtime_ms": {
        "columns": ("method", "mean_ms", "std_ms"),
        "numeric": ("mean_ms", "std_ms"),
    },
    "table4_ablation": {
        "columns": ("discard", "fr", "variant", "label", "dataset", "pauc"),
        "numeric": ("discard", "pauc"),
    },
    "table6_7_average": {
        "columns": ("discard", "method", "pauc"),
        "numeric": ("discard", "pauc"),
    },
    "table8_runtime_breakdown_ms": {
        "columns": ("step", "symbol", "mean_ms", "std_ms"),
        "numeric": ("mean_ms", "std_ms"),
    },
}


def source_dir(source: str = DEFAULT_SOURCE) -> Path:
    """Directory holding the transcribed tables of ``source``; DataError if it is unknown."""
    path = PUBLISHED_DIR / source
    if not path.is_dir():
        known = sorted(p.name for p in PUBLISHED_DIR.glob("*") if p.is_dir())
        raise DataError(
            f"{path}: unknown published source {source!r} (known: {', '.join(known) or 'none'})"
        )
    return path


def _read_csv(path: Path, columns: tuple[str, ...], numeric: tuple[str, ...]) -> pd.DataFrame:
    return read_checked_csv(path, columns, numeric, "published table not found")


def load_pauc(source: str = DEFAULT_SOURCE) -> pd.DataFrame:
    """Published pAUC values in long form: columns ``discard, fr, method, dataset, pauc``.

    ``discard`` and ``pauc`` are floats; a pAUC the paper does not report (n/a) is NaN.
    ``dataset`` is one of :data:`PAPER_DATASETS` or ``"mean"`` for the paper's average column.
    """
    return _read_csv(source_dir(source) / "pauc.csv", PAUC_COLUMNS, ("discard", "pauc"))


def load_table(name: str, source: str = DEFAULT_SOURCE) -> pd.DataFrame:
    """One of the other transcribed tables, by file stem (a key of :data:`TABLES`).

    Numeric columns are floats, Table 1's counts int64, and
    ``table1_datasets.images_are_templates`` a bool (IJB-C's count is of templates).
    """
    spec = TABLES.get(name)
    if spec is None:
        raise DataError(f"{name!r}: unknown published table (known: {', '.join(TABLES)})")
    path = source_dir(source) / f"{name}.csv"
    integer = spec.get("integer", ())
    frame = _read_csv(path, spec["columns"], spec["numeric"] + integer)
    for col in integer:
        if frame[col].isna().any() or (frame[col] % 1 != 0).any():
            raise DataError(f"{path}: column {col!r} must hold whole numbers")
        frame[col] = frame[col].astype("int64")
    if "images_are_templates" in frame.columns:
        flags = frame["images_are_templates"]
        if not flags.isin(("True", "False")).all():
            raise DataError(f"{path}: images_are_templates must be True or False")
        frame["images_are_templates"] = flags == "True"
    return frame
