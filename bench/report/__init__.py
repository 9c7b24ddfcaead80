"""Reports: the paper's tables (LaTeX, Markdown, HTML) and figures (PNG, PDF) from tidy results.

Entry points for the CLI: :func:`build_report` (``bench report``) and
:func:`render_drift_markdown` (``bench check --report``).
"""

from __future__ import annotations

import pandas as pd

from bench.report.build import build_report
from bench.report.render import render_markdown
from bench.report.tables import drift_table

__all__ = ["build_report", "render_drift_markdown"]


def render_drift_markdown(frame: pd.DataFrame, show_not_reproduced: bool = False) -> str:
    """The ``bench check`` drift table as Markdown.

    ``frame`` has columns fr, method, dataset, discard, reproduced, published, delta, status
    (match / drift / not reproduced / no published value); not-reproduced cells are counted
    in the summary but listed only with ``show_not_reproduced``.
    """
    return render_markdown(drift_table(frame, show_not_reproduced))
