"""What identifies a pAUC row and a run record: the ``pauc.csv`` column schema, the identity
columns, the paper's fixed settings, and the one reader of ``runs/<run_id>.json``.

The pipeline writes rows and records with these; :mod:`bench.results.table` reads and checks
them. It lives at the bottom layer so that writers and readers share one definition.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from bench.core.errors import DataError

PAUC_COLUMNS: tuple[str, ...] = (
    "discard", "fr", "method", "dataset", "pauc", "pauc_lo", "pauc_hi", "edc_variant", "fmr", "folds",
    "quality_rule", "template_rule", "quality_fr", "method_options", "fr_options", "seed",
    "n_mated", "n_nonmated", "run_id", "pauc_note",
)
# Files written before ``pauc_note`` existed are still read, and a run appending to one
# first adds the column (:func:`add_pauc_note_column`).
PAUC_COLUMNS_BEFORE_NOTE: tuple[str, ...] = PAUC_COLUMNS[:-1]
# The note of an undefined pAUC (empty or nan) in such a file, which had no place for a reason.
NOTE_NOT_RECORDED = "undefined; reason not recorded (row written before pauc_note)"
# The columns of the published tables: a results file holding only these (numbers made by
# other code) is read as the paper's protocol, and says so (``frame.attrs["assumed"]``).
PUBLISHED_COLUMNS: tuple[str, ...] = ("discard", "fr", "method", "dataset", "pauc")
IDENTITY: tuple[str, ...] = (
    "discard", "fr", "method", "dataset", "edc_variant", "fmr", "folds", "quality_rule", "template_rule",
    "quality_fr", "method_options", "fr_options", "seed",
)
NUMERIC: tuple[str, ...] = ("discard", "pauc", "pauc_lo", "pauc_hi", "fmr", "seed", "n_mated", "n_nonmated")

PAPER_FMR = 1e-3
ALL_FOLDS = "all"
NO_QUALITY_FR = "none"
DEFAULT_EDC_VARIANT = "fixed-threshold"
# Values the paper's protocol fixes (quality_fr depends on the method: see paper_quality_fr).
PAPER_SETTINGS: dict[str, object] = {
    "fmr": PAPER_FMR, "folds": ALL_FOLDS, "quality_rule": "min", "template_rule": "min",
    "method_options": "{}", "fr_options": "{}",
}


def read_run_record(path: Path) -> dict:
    """A run's ``runs/<run_id>.json``; an unreadable or foreign file is a one-line error naming it."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read run record ({exc})") from None
    if not isinstance(record, dict) or "method" not in record:
        raise DataError(f"{path}: not a run record (no 'method' key)")
    return record


def canonical_options(options: dict[str, object]) -> str:
    """Options as the text stored in ``method_options`` / ``fr_options`` (``{}`` = defaults)."""
    return json.dumps(options, sort_keys=True, separators=(",", ":"))


def format_folds(folds: list[int] | None, all_folds: list[int] | None = None) -> str:
    """``all`` when every fold is used, else the sorted fold numbers (``1,2``)."""
    if folds is None:
        return ALL_FOLDS
    chosen = sorted(set(int(f) for f in folds))
    if all_folds is not None and chosen == sorted(set(int(f) for f in all_folds)):
        return ALL_FOLDS
    return ",".join(str(f) for f in chosen)


def before_note_pauc_note(pauc: str) -> str:
    """The ``pauc_note`` a row of a file without that column stands for: empty for a number."""
    return NOTE_NOT_RECORDED if pauc.strip() in ("", "nan", "NaN") else ""


def add_pauc_note_column(text: str) -> str:
    """``pauc.csv`` text with the columns of :data:`PAUC_COLUMNS_BEFORE_NOTE` → the same rows
    with a ``pauc_note`` (:func:`before_note_pauc_note`); text with any other header is
    returned unchanged."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != PAUC_COLUMNS_BEFORE_NOTE:
        return text
    at = PAUC_COLUMNS.index("pauc")
    noted = [[*r, before_note_pauc_note(r[at]) if len(r) > at else ""] for r in rows[1:] if r]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([[*rows[0], "pauc_note"], *noted])
    return buf.getvalue()
