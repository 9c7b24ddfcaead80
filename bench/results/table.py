"""The results folder's pAUC table (``RESULTS/pauc.csv``): its columns, a strict reader, and
what makes two rows the same cell.

``bench run`` appends to it, ``bench check`` and ``bench report`` read it; all three share
the column list and the validation here (docs/RESULTS_FORMAT.md).

A row's *identity* is every parameter that changes its number (:data:`IDENTITY`): "latest
row wins" only among rows of the same identity, so a ``--fmr 0.1`` run can never replace an
FMR 1e-3 cell. A row is the *paper's protocol* when its identity matches the settings of the
DifFIQA paper (:func:`protocol_differences` is empty); reports and ``bench check`` put only
those rows under the paper's captions and label every other row with what differs.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import DataError

# The row schema lives in bench.core.records (the pipeline writes rows; this layer reads them).
from bench.core.records import (
    ALL_FOLDS,
    DEFAULT_EDC_VARIANT,
    IDENTITY,
    NO_QUALITY_FR,
    NOTE_NOT_RECORDED,
    NUMERIC,
    PAPER_FMR,
    PAPER_SETTINGS,
    PAUC_COLUMNS,
    PAUC_COLUMNS_BEFORE_NOTE,
    PUBLISHED_COLUMNS,
    before_note_pauc_note,
    canonical_options,
    format_folds,
    read_run_record,
)

__all__ = ["ALL_FOLDS", "DEFAULT_EDC_VARIANT", "IDENTITY", "NO_QUALITY_FR", "NUMERIC", "PAPER_FMR", "PAPER_SETTINGS",
           "PAUC_COLUMNS", "PUBLISHED_COLUMNS", "NOT_REPORTED", "NOTE_NOT_RECORDED", "canonical_options", "format_folds",
           "read_run_record", "read_pauc_csv", "read_pauc_rows", "read_checked_csv", "latest_per_identity",
           "paper_quality_fr", "protocol_differences", "paper_rows"]

# The pauc_note of an empty pauc in a published-columns-only file (the paper's n/a).
NOT_REPORTED = "not reported (n/a in the source)"
# What a published-columns-only file is assumed to hold besides its five columns.
_ASSUMED: dict[str, object] = {
    "pauc_lo": np.nan, "pauc_hi": np.nan, "edc_variant": DEFAULT_EDC_VARIANT, "seed": 0.0,
    "n_mated": np.nan, "n_nonmated": np.nan, "run_id": "external", **PAPER_SETTINGS,
}


def _read_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows and each row's line number of a CSV file; a row with the wrong number of
    fields names its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text))
    rows, lines = [], []
    for row in reader:
        rows.append(row)
        lines.append(reader.line_num)
    if not rows:
        raise DataError(f"{path}: empty file (no header)")
    header = rows[0]
    for line, row in zip(lines[1:], rows[1:]):
        if row and len(row) != len(header):
            raise DataError(f"{path}: line {line}: {len(row)} field(s), expected {len(header)} ({','.join(header)}); "
                            "the file may be truncated")
    kept = [(r, n) for r, n in zip(rows[1:], lines[1:]) if r]
    return header, [r for r, _ in kept], [n for _, n in kept]


def read_checked_csv(path: Path, columns: tuple[str, ...], numeric: tuple[str, ...], missing: str) -> pd.DataFrame:
    """Read ``path`` as text, check its header and field counts, and convert ``numeric`` columns to float.

    Only empty cells (and ``nan``) become NaN: pandas' default NA spellings ("NA", "n/a",
    ...) must not silently swallow a label. ``missing`` completes the not-found message.
    """
    if not path.is_file():
        raise DataError(f"{path}: {missing}")
    header, rows, lines = _read_rows(path)
    if tuple(header) != columns:
        raise DataError(f"{path}: columns {header}, expected {list(columns)}")
    frame = pd.DataFrame(rows, columns=header, dtype=str)
    _to_numeric(path, frame, numeric, lines)
    return frame


def _to_numeric(path: Path, frame: pd.DataFrame, numeric: tuple[str, ...], lines: list[int]) -> None:
    for col in numeric:
        text = frame[col].fillna("").astype(str).str.strip()
        values = pd.to_numeric(text.mask(text.isin(["", "nan", "NaN"])), errors="coerce")
        bad = text.ne("") & ~text.isin(["nan", "NaN"]) & values.isna()
        if bad.any():
            line = lines[int(np.flatnonzero(bad.to_numpy())[0])]
            raise DataError(f"{path}: line {line}: column {col!r} is not a number: {text[bad].iloc[0]!r}")
        frame[col] = values.astype(float)


# Every number a pauc.csv row holds: (lowest, lowest allowed, highest, highest allowed, may be empty).
_RANGES: dict[str, tuple[float, bool, float, bool, bool]] = {
    "discard": (0.0, False, 1.0, True, False),
    "fmr": (0.0, False, 1.0, False, False),
    **{col: (0.0, True, np.inf, False, True) for col in ("pauc", "pauc_lo", "pauc_hi", "n_mated", "n_nonmated")},
}


def _check_values(path: Path, text: pd.DataFrame, frame: pd.DataFrame, lines: list[int]) -> None:
    """Every number in its range, and every pAUC a number or undefined with a ``pauc_note``."""
    for col, (low, low_in, high, high_in, may_be_empty) in _RANGES.items():
        values = frame[col].to_numpy(dtype=float)
        empty = np.isnan(values)
        with np.errstate(invalid="ignore"):
            inside = (values >= low if low_in else values > low) & (values <= high if high_in else values < high)
        bad = ~inside & (~empty if may_be_empty else True)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
            raise DataError(f"{path}: line {lines[i]}: column {col!r} is {text[col].iloc[i]!r}: "
                            f"expected a number in {interval}")
    undefined = frame["pauc"].isna().to_numpy()
    noted = frame["pauc_note"].str.strip().ne("").to_numpy()
    problems = ((undefined & ~noted, "empty pauc value and no pauc_note saying why it is undefined"),
                (~undefined & noted, ("a pauc_note beside a pauc value (a note marks an undefined pAUC, "
                                      "whose pauc field is empty)")))
    for mask, problem in problems:
        if mask.any():
            raise DataError(f"{path}: line {lines[int(np.flatnonzero(mask)[0])]}: {problem}")


def read_pauc_rows(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``results/pauc.csv`` as (text, values): the same rows in file order, with every column
    of :data:`PAUC_COLUMNS`, as written and as read (:func:`read_pauc_csv`).

    Copying the text keeps every field as it was written (a frozen set compares identities
    as text).
    """
    path = Path(results) / "pauc.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found (write it with `bench run`)")
    header, rows, lines = _read_rows(path)
    assumed: list[str] = []
    if tuple(header) == PUBLISHED_COLUMNS:
        frame = pd.DataFrame(rows, columns=header, dtype=str)
        assumed = [c for c in PAUC_COLUMNS if c not in PUBLISHED_COLUMNS and c != "pauc_note"]
        for col in assumed:
            frame[col] = str(_ASSUMED.get(col, ""))
        frame["quality_fr"] = [paper_quality_fr(m, f) for m, f in zip(frame["method"], frame["fr"])]
        frame["pauc_note"] = [NOT_REPORTED if v.strip() in ("", "nan", "NaN") else "" for v in frame["pauc"]]
        frame = frame[list(PAUC_COLUMNS)]
    elif tuple(header) == PAUC_COLUMNS:
        frame = pd.DataFrame(rows, columns=header, dtype=str)
    elif tuple(header) == PAUC_COLUMNS_BEFORE_NOTE:
        frame = pd.DataFrame(rows, columns=header, dtype=str)
        frame["pauc_note"] = [before_note_pauc_note(v) for v in frame["pauc"]]
    elif "run_id" in header:
        raise DataError(f"{path}: columns {header} are those of an older fiqa-bench whose rows do not record every "
                        "setting that changes a pAUC (fmr, folds, quality rule, ...); re-run the cells, or keep only "
                        f"the columns {','.join(PUBLISHED_COLUMNS)} to check them as the paper's protocol")
    else:
        raise DataError(f"{path}: columns {header}, expected {','.join(PAUC_COLUMNS)} (as `bench run` writes) or "
                        f"{','.join(PUBLISHED_COLUMNS)} (numbers from other code, read as the paper's protocol)")
    text = frame.copy()
    _to_numeric(path, frame, NUMERIC, lines)
    _check_values(path, text, frame, lines)
    frame.attrs["assumed"] = assumed
    return text, frame


def read_pauc_csv(results: Path) -> pd.DataFrame:
    """All rows of ``results/pauc.csv`` in file order, with every column of :data:`PAUC_COLUMNS`.

    A file with only the published columns (``discard,fr,method,dataset,pauc``) is accepted:
    the other columns are filled with the paper's protocol and listed in
    ``frame.attrs["assumed"]`` so that callers can say so; an empty pauc there is undefined
    (:data:`NOT_REPORTED`). A file written before ``pauc_note`` existed is read too.

    ``pauc`` is NaN exactly where the pAUC is undefined, and ``pauc_note`` then says why (e.g.
    "FNMR is 0 at zero discard"); a number outside its range, an empty pauc without a note
    or a note beside a number is refused naming the file and line.
    """
    return read_pauc_rows(results)[1]


def latest_per_identity(frame: pd.DataFrame) -> pd.DataFrame:
    """The last row (in file order) of each identity: re-running a cell replaces only that cell."""
    key = frame[list(IDENTITY)].astype(str)
    keep = ~key.duplicated(keep="last")
    out = frame[keep.to_numpy()].reset_index(drop=True)
    out.attrs = dict(frame.attrs)
    return out


def paper_quality_fr(method: str, fr: str) -> str:
    """The FR model the paper's protocol uses inside ``method``'s score when ``fr`` evaluates.

    The method card's ``quality_fr`` (the official code's choice, e.g. CosFace for DifFIQA)
    when it names one; the evaluation FR model itself for other FR-dependent methods;
    ``none`` for methods whose scores do not depend on an FR model. Names the harness does
    not know (a published-columns file with printed names) are treated as the latter.
    """
    from bench.core.cards import load_cards, registered_name

    cards = load_cards("method")
    card = cards.get(method) or cards.get(registered_name("method", method) or "")
    if card is None or not card.get("needs_fr", False):
        return NO_QUALITY_FR
    return str(card.get("quality_fr") or fr)


def protocol_differences(frame: pd.DataFrame, edc_variant: str = DEFAULT_EDC_VARIANT) -> pd.Series:
    """Per row, what differs from the paper's protocol ("" for a paper-protocol row).

    E.g. ``"folds 1,2; FMR 0.1; quality rule mean"``. ``edc_variant`` is the variant the
    caller compares (the paper's default unless the user names another).
    """
    labels: list[str] = []
    for row in frame.itertuples(index=False):
        parts: list[str] = []
        if row.edc_variant != edc_variant:
            parts.append(f"EDC {row.edc_variant}")
        if not np.isclose(float(row.fmr), PAPER_FMR, rtol=1e-9, atol=0):
            parts.append(f"FMR {float(row.fmr):g}")
        if row.folds != ALL_FOLDS:
            parts.append(f"folds {row.folds}")
        if row.quality_rule != "min":
            parts.append(f"quality rule {row.quality_rule}")
        if row.template_rule != "min":
            parts.append(f"template rule {row.template_rule}")
        wanted = paper_quality_fr(row.method, row.fr)
        if row.quality_fr != wanted:
            parts.append(f"quality FR {row.quality_fr} (paper: {wanted})")
        if row.method_options not in ("", "{}"):
            parts.append(f"method options {row.method_options}")
        if row.fr_options not in ("", "{}"):
            parts.append(f"FR options {row.fr_options}")
        labels.append("; ".join(parts))
    return pd.Series(labels, index=frame.index, dtype=object)


def paper_rows(frame: pd.DataFrame, edc_variant: str = DEFAULT_EDC_VARIANT) -> pd.DataFrame:
    """Rows of the paper's protocol, the latest per (discard, fr, method, dataset).

    Seeds do not define the protocol: of several seeds of a cell the latest run stands for it.
    """
    rows = frame[(protocol_differences(frame, edc_variant) == "").to_numpy()]
    rows = rows.drop_duplicates(subset=["discard", "fr", "method", "dataset"], keep="last").reset_index(drop=True)
    rows.attrs = dict(frame.attrs)
    return rows
