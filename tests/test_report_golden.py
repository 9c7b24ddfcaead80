"""Golden test: one small rendered table (2 methods x 2 datasets) pinned as Markdown and LaTeX.

Regenerate after an intended format change (then review the diff of tests/golden/):
    BENCH_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_report_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from bench.report.render import render_latex, render_markdown
from bench.report.tables import pauc_table

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("BENCH_UPDATE_GOLDEN") == "1"


def small_frame() -> pd.DataFrame:
    """ArcFace, CR-FIQA and DifFIQA(R) on LFW and XQLFW (each method best on one dataset)."""
    return pd.DataFrame(
        {
            "fr": ["arcface"] * 4,
            "method": ["CR-FIQA", "CR-FIQA", "DifFIQA(R)", "DifFIQA(R)"],
            "dataset": ["LFW", "XQLFW", "LFW", "XQLFW"],
            "pauc": [0.675, 0.642, 0.708, 0.554],
        }
    )


@pytest.mark.parametrize(("name", "render"), [("pauc_2x2.md", render_markdown), ("pauc_2x2.tex", render_latex)])
def test_small_table_matches_golden(name, render):
    text = render(pauc_table(small_frame(), 0.3))
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} missing: regenerate with BENCH_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")
