"""The results folder's pAUC table (``RESULTS/pauc.csv``): its columns and a strict reader.

``bench run`` appends to it, ``bench check`` and ``bench report`` read it; all three share
the column list and the validation here (docs/RESULTS_FORMAT.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import DataError

PAUC_COLUMNS: tuple[str, ...] = ("discard", "fr", "method", "dataset", "pauc", "edc_variant", "run_id")


def read_checked_csv(path: Path, columns: tuple[str, ...], numeric: tuple[str, ...], missing: str) -> pd.DataFrame:
    """Read ``path`` as text, check its header, and convert ``numeric`` columns to float.

    Only empty cells (and ``nan``) become NaN: pandas' default NA spellings ("NA", "n/a",
    ...) must not silently swallow a label. ``missing`` completes the not-found message.
    """
    if not path.is_file():
        raise DataError(f"{path}: {missing}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot parse CSV ({exc})") from exc
    if tuple(frame.columns) != columns:
        raise DataError(f"{path}: columns {list(frame.columns)}, expected {list(columns)}")
    for col in numeric:
        text = frame[col].str.strip()
        values = pd.to_numeric(text.mask(text.isin(["", "nan", "NaN"])), errors="coerce")
        bad = text.ne("") & ~text.isin(["nan", "NaN"]) & values.isna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # +1 header, +1 for 1-based lines
            raise DataError(f"{path}: line {line}: column {col!r} is not a number: {text[bad].iloc[0]!r}")
        frame[col] = values.astype(float)
    return frame


def read_pauc_csv(results: Path) -> pd.DataFrame:
    """All rows of ``results/pauc.csv`` in file order, ``discard``/``pauc`` as floats."""
    path = results / "pauc.csv"
    frame = read_checked_csv(path, PAUC_COLUMNS, ("discard", "pauc"), "not found (write it with `bench run`)")
    if frame["discard"].isna().any():
        raise DataError(f"{path}: empty discard value")
    return frame
