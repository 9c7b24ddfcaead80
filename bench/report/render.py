"""Draw :class:`~bench.report.model.Table` objects with the jinja2 templates in ``reports/``.

LaTeX (booktabs + xcolor), Markdown and HTML (autoescaped) come from the same table object.
Output depends only on the inputs: no dates, no environment-dependent values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

import jinja2

from bench.core import paths
from bench.report.model import Table

# Unicode that LaTeX (pdflatex) cannot typeset as text, with its math/text equivalent.
_TEX_UNICODE: dict[str, str] = {
    "Δ": r"$\Delta$", "±": r"$\pm$", "μ": r"$\mu$", "σ": r"$\sigma$", "×": r"$\times$",
    "—": "---", "–": "--", "−": "$-$", "†": r"\dag{}", "↓": r"$\downarrow$",
    "ρ": r"$\rho$", "τ": r"$\tau$", "∩": r"$\cap$",
}
_TEX_SPECIAL = re.compile(r"([\\&%$#_{}~^])")
_TEX_REPLACE = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_MD_SPECIAL = re.compile(r"([\\|*_`])")
# Markdown has no colour: a coloured disc marks the paper's green / blue / red.
MD_MARKS: dict[str, str] = {"green": "🟢", "blue": "🔵", "red": "🔴"}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials and map the few non-ASCII symbols the tables use."""
    escaped = _TEX_SPECIAL.sub(lambda m: _TEX_REPLACE.get(m.group(1), "\\" + m.group(1)), str(text))
    return "".join(_TEX_UNICODE.get(ch, ch) for ch in escaped)


def md_escape(text: str) -> str:
    """Escape characters that Markdown tables or emphasis would swallow."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def flat_header(table: Table) -> list[str]:
    """One header row for formats without column groups ("Adience reproduced")."""
    last = [h.text for h in table.header[-1]]
    if len(table.header) == 1:
        return last
    groups: list[str] = []
    for cell in table.header[0]:
        groups += [cell.text] * cell.span
    return [f"{g} {t}".strip() for g, t in zip(groups, last, strict=True)]


def header_rules(row: Sequence[Any]) -> list[tuple[int, int]]:
    """1-based (first, last) column ranges of the multi-column groups of a header row."""
    rules, col = [], 1
    for cell in row:
        if cell.span > 1:
            rules.append((col, col + cell.span - 1))
        col += cell.span
    return rules


@cache
def environment() -> jinja2.Environment:
    """The template environment: strict undefined, autoescape for ``*.html.j2`` only."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths.TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tex"] = tex_escape
    env.filters["md"] = md_escape
    env.globals.update(flat_header=flat_header, header_rules=header_rules, md_marks=MD_MARKS)
    return env


def render(template: str, **context: Any) -> str:
    """Render ``reports/<template>`` with ``context``; the text ends with exactly one newline."""
    return environment().get_template(template).render(**context).rstrip("\n") + "\n"


def render_markdown(table: Table) -> str:
    """One table as GitHub-flavoured Markdown."""
    return render("table.md.j2", table=table)


def render_latex(table: Table) -> str:
    """One table as a LaTeX ``table`` float (needs booktabs and xcolor)."""
    return render("table.tex.j2", table=table)


def render_html(table: Table) -> str:
    """One table as an HTML fragment (the page's CSS styles it)."""
    return render("table.html.j2", table=table)
