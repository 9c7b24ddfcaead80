"""LaTeX output must be typesettable by pdflatex: no raw non-ASCII symbol may reach it."""

from __future__ import annotations

import pandas as pd

from bench.report.render import render_latex
from bench.report.tables import agreement_table


def test_agreement_table_latex_is_ascii() -> None:
    frame = pd.DataFrame({"dataset": ["LFW"], "method_a": ["DifFIQA"], "method_b": ["SER-FIQ"], "n_images": [10],
                          "spearman": [0.5], "kendall": [0.4], "low_overlap": [0.3]})
    tex = render_latex(agreement_table(frame))
    assert tex.isascii(), sorted({ch for ch in tex if not ch.isascii()})
    assert r"$\rho$" in tex and r"$\tau$" in tex and r"$\cap$" in tex
