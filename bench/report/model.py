"""Format-neutral table model: what a cell says and how it is marked, not how it is drawn.

Table builders (``bench.report.tables``) produce :class:`Table` objects from tidy frames; the
jinja2 templates in ``reports/`` draw the same object as LaTeX, Markdown or HTML, so the three
outputs can never disagree on a value or on which cell is marked best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# The paper colours the overall best mean green, the second blue, the third red.
RANK_COLOURS: dict[int, str] = {1: "green", 2: "blue", 3: "red"}


@dataclass(frozen=True)
class Cell:
    """One table cell.

    ``kind`` selects styling: ``label`` (row header), ``value``, ``missing`` (not run),
    ``na`` (not reported), ``delta`` (reproduced minus published). ``note`` is small
    secondary text shown on hover; ``ref`` a footnote marker (e.g. the number of the
    footnote saying why a cell was not run); ``rank`` 1..3 colours a top-three value;
    ``ci`` the value's bootstrap interval as printed (``[0.520, 0.580]``, ``BCa [...]``), shown
    on the HTML page behind a toggle and in LaTeX / Markdown when the table's ``show_ci``.
    """

    text: str
    kind: str = "value"
    bold: bool = False
    rank: int | None = None
    note: str = ""
    ref: str = ""
    sign: int = 0
    ci: str = ""

    @property
    def colour(self) -> str | None:
        """The paper's colour name for a top-three value, else None."""
        return RANK_COLOURS.get(self.rank) if self.rank else None


@dataclass(frozen=True)
class HeaderCell:
    """A header cell spanning ``span`` body columns."""

    text: str
    span: int = 1


@dataclass(frozen=True)
class Block:
    """A group of body rows, optionally under a full-width title row (one FR model)."""

    title: str
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Table:
    """A titled table: header rows, blocks of body rows, footnotes.

    ``align`` is one LaTeX column letter per body column (``l``/``r``/``c``). ``header``
    holds one or two rows; in a two-row header the first row groups the second.
    ``show_ci`` prints the cells' intervals (``0.699 ± 0.031``) in LaTeX and Markdown.
    """

    key: str
    title: str
    caption: str
    header: tuple[tuple[HeaderCell, ...], ...]
    blocks: tuple[Block, ...]
    align: str
    footnotes: tuple[str, ...] = field(default_factory=tuple)
    show_ci: bool = False

    @property
    def ncols(self) -> int:
        return len(self.align)


def fmt(value: float | None, decimals: int) -> str:
    """Fixed-point text; NaN/None become ``n/a`` (the paper's spelling)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{decimals}f}"


def fmt_delta(value: float | None, decimals: int) -> str:
    """Signed fixed-point text for a difference; ``-0.000`` is printed as ``+0.000``."""
    if value is None or math.isnan(value):
        return "—"
    text = f"{value:+.{decimals}f}"
    return "+" + text[1:] if text.startswith("-") and float(text) == 0 else text


def header_row(*texts: str) -> tuple[HeaderCell, ...]:
    """One header row of single-span cells."""
    return tuple(HeaderCell(t) for t in texts)
