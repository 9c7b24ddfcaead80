"""``bench datasets``: where each dataset is expected, whether it is found, and its Table 1 counts.

Table 1 of the paper counts whole datasets (#images, #identities) and protocol comparisons
(#mated, #non-mated). Found counts come from :class:`bench.datasets.base.FaceDataset`
(``n_images_total``/``n_identities_total`` from the folder listing, comparisons from the
protocol); published ones from each card's ``[table1]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.core import registry
from bench.core.cards import Card, load_cards
from bench.core.errors import BenchError, DataError
from bench.datasets.base import FaceDataset
from bench.datasets.common import CardLoader, layouts

# Table 1's datasets, in the paper's row order.
PAPER_DATASETS = ("adience", "calfw", "cfp-fp", "cplfw", "ijb-c", "lfw", "xqlfw")
FIELDS = ("images", "identities", "mated", "nonmated")
FOLDS_EXPECTED = 10


def _load(card: Card, root: Path | None) -> tuple[FaceDataset | None, str, str, str]:
    """(dataset or None, where it looked / was found, the archive recognised there, error
    message if missing)."""
    loader = registry.create("dataset", card.name)
    try:
        if isinstance(loader, CardLoader):
            found = loader.find(root)
            where = str(found.images if found.is_bin else found.folder)
            archive = f"{found.layout.archive} (<root>/{found.layout.path})"
        else:
            where, archive = str(loader.locate(root)), ""  # type: ignore[arg-type]  # in-memory loaders ignore the root
        return loader.load(root), where, archive, ""  # type: ignore[arg-type]
    except BenchError as exc:
        return None, str(root) if root is not None else "(no data root)", "", str(exc)


def _counts(card: Card, ds: FaceDataset) -> dict[str, int | None]:
    images = ds.n_images_total
    if card.get("table1", {}).get("images_unit") == "templates" and ds.protocol.templates is not None:
        images = ds.protocol.templates.n_templates
    return {"images": images, "identities": ds.n_identities_total,
            "mated": ds.protocol.n_mated, "nonmated": ds.protocol.n_nonmated}


def _differs(card: Card, ds: FaceDataset, found: dict[str, int | None]) -> str:
    """Which found counts differ from the published ones, and the likely reason."""
    published = card.get("table1", {})
    parts = []
    for field in FIELDS:
        want, got = published.get(field), found[field]
        if want is None:
            continue
        if got is None:
            parts.append(f"{field} unknown (published {want:,})")
        elif got != want:
            parts.append(f"{field} {got:,} vs {want:,}")
    if not parts:
        return ""
    reasons = []
    if ds.protocol.fold is not None:
        n_folds = len(np.unique(ds.protocol.fold))
        if n_folds < FOLDS_EXPECTED:
            reasons.append(f"found {n_folds} of {FOLDS_EXPECTED} folds")
    reasons += [n for n in ds.notes if "bin" in n or "identities" in n]
    return "; ".join(parts) + (f" ({'; '.join(reasons)})" if reasons else "")


def table1_frame(root: Path | None, names: list[str] | None = None) -> pd.DataFrame:
    """Table 1, found vs published: one row per dataset (paper order by default).

    Columns: dataset (paper name), images, identities, mated, nonmated, status
    (found/missing), published_images, published_identities, published_mated,
    published_nonmated, differs (which found counts differ from the paper and why).
    Counts are nullable integers (missing datasets give <NA>).
    """
    cards = load_cards("dataset")
    rows = []
    for name in names or list(PAPER_DATASETS):
        card = cards[name] if name in cards else registry.get_card("dataset", name)
        ds, _where, _archive, error = _load(card, root)
        found = _counts(card, ds) if ds is not None else dict.fromkeys(FIELDS)
        published = card.get("table1", {})
        rows.append({
            "dataset": card.paper_name, **found, "status": "found" if ds is not None else "missing",
            **{f"published_{f}": published.get(f) for f in FIELDS},
            "differs": _differs(card, ds, found) if ds is not None else error,
        })
    frame = pd.DataFrame(rows)
    for col in [*FIELDS, *(f"published_{f}" for f in FIELDS)]:
        frame[col] = frame[col].astype("Int64")
    return frame


def _fmt(value: int | None) -> str:
    return "-" if value is None or value is pd.NA else f"{int(value):,}"


def describe(root: Path | None) -> str:
    """Per dataset card: expected layout, where it looked, found/missing, counts when found.

    A ``root`` that is not a folder is an error rather than a list of "missing" datasets.
    """
    if root is not None and not Path(root).is_dir():
        what = "is not a folder" if Path(root).exists() else "not found"
        raise DataError(f"--data-root {root}: {what}; name the folder holding one subfolder per dataset")
    lines = [f"data root: {root if root is not None else '(none: set --data-root DIR or BENCH_DATA)'}", ""]
    for card in load_cards("dataset").values():
        ds, where, archive, error = _load(card, root)
        lines.append(f"{card.name} ({card.paper_name}): {'found' if ds is not None else 'missing'}")
        loader = registry.create("dataset", card.name)
        in_memory = not isinstance(loader, CardLoader)
        places = "in memory (no files)" if in_memory else ", ".join(f"<root>/{e.path}" for e in layouts(loader))
        lines.append(f"  expected: {places}")
        if card.get("protocol"):
            lines.append(f"  protocol: {card.get('protocol')}")
        lines.append(f"  card:     {card.path}")
        if ds is None:
            lines.append(f"  problem:  {error}")
        else:
            c = _counts(card, ds)
            pub = card.get("table1", {})
            lines.append(f"  found at: {where}")
            if archive:
                lines.append(f"  archive:  {archive}")
            lines.append("  counts:   " + ", ".join(f"{f} {_fmt(c[f])} (paper {_fmt(pub.get(f))})" for f in FIELDS))
            lines.append(f"  protocol images: {len(ds):,}")
            diff = _differs(card, ds, c)
            if diff:
                lines.append(f"  differs:  {diff}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
