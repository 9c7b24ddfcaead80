"""bench.report: tables from the published source and from a small fake results folder.

The fake folder is written the way ``bench run`` writes one (docs/RESULTS_FORMAT.md):
pauc.csv, runs/*.json, curves/*.parquet and scores/<method>/<dataset>.parquet.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from bench.core.errors import BenchError, DataError
from bench.report import build_report, render_drift_markdown
from bench.report.figures import edc_grid
from bench.report.frames import results_pauc
from bench.report.tables import fr_display, render_table1
from bench.results.published import PAPER_FR, load_pauc
from bench.results.table import PAUC_COLUMNS, paper_quality_fr

# (method, fr, dataset, pauc at 0.2, pauc at 0.3), registered names.
CELLS = [
    ("cr-fiqa", "arcface", "lfw", 0.74, 0.70),
    ("cr-fiqa", "arcface", "xqlfw", 0.77, 0.61),
    ("diffiqa", "arcface", "lfw", 0.76, 0.69),
    ("diffiqa", "arcface", "xqlfw", 0.70, 0.55),
    ("diffiqa", "arcface", "calfw", 0.93, 0.90),
    ("diffiqa", "cosface", "lfw", 0.76, 0.69),
    ("diffiqa-noflip", "cosface", "lfw", 0.75, 0.702),
]
NOT_RUN_REASON = "dataset missing: <root>/adience not found"
# A later run of ArcFace DifFIQA LFW with other settings: it must never replace the 0.690 cell.
OTHER_RUN = {"fmr": "0.1", "quality_rule": "mean", "folds": "1,2", "n_mated": "600", "n_nonmated": "600"}
OTHER_PAUC = 0.123
# The bootstrap interval of ArcFace DifFIQA XQLFW at 0.3 (0.55 ± 0.03) and the CALFW run's counts.
INTERVAL = ("0.52", "0.58")
CALFW_COUNTS = ("2990", "3000")
GPU = "cuda: NVIDIA test GPU"


def pauc_line(discard: float, fr: str, method: str, dataset: str, pauc: float, run_id: str, **changes: str) -> str:
    """One pauc.csv row as `bench run` writes it: the paper's protocol unless ``changes`` say otherwise."""
    row = {"discard": str(discard), "fr": fr, "method": method, "dataset": dataset, "pauc": repr(pauc),
           "pauc_lo": "", "pauc_hi": "", "edc_variant": "fixed-threshold", "fmr": "0.001", "folds": "all",
           "quality_rule": "min", "template_rule": "min", "quality_fr": paper_quality_fr(method, fr),
           "method_options": "{}", "fr_options": "{}", "seed": "0", "n_mated": "3000", "n_nonmated": "3000",
           "run_id": run_id, "pauc_note": "", **changes}
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([row[c] for c in PAUC_COLUMNS])
    return buf.getvalue()


def _run_id(method: str, fr: str, dataset: str) -> str:
    return f"{method}_{fr}_{dataset}"


def write_results(root: Path) -> Path:
    """A small results folder; returns its path."""
    (root / "runs").mkdir(parents=True)
    (root / "curves").mkdir()
    lines = [
        # An older run of the same cell (overridden below) and another EDC variant.
        pauc_line(0.3, "arcface", "cr-fiqa", "lfw", 0.999, "old_run"),
        pauc_line(0.3, "arcface", "cr-fiqa", "lfw", 0.111, "other_variant", edc_variant="recomputed-threshold"),
    ]
    rng = np.random.default_rng(7)
    for i, (method, fr, dataset, p2, p3) in enumerate(CELLS):
        run_id = _run_id(method, fr, dataset)
        extra: dict[str, str] = {}
        if (method, fr, dataset) == ("diffiqa", "arcface", "xqlfw"):
            extra = {"pauc_lo": INTERVAL[0], "pauc_hi": INTERVAL[1]}
        if dataset == "calfw":
            extra = {"n_mated": CALFW_COUNTS[0], "n_nonmated": CALFW_COUNTS[1]}
        lines += [pauc_line(0.2, fr, method, dataset, p2, run_id), pauc_line(0.3, fr, method, dataset, p3, run_id, **extra)]
        x = np.array([0.0, 0.05, 0.1, 0.18, 0.25, 0.4, 1.0])
        y = np.array([0.05, 0.045, 0.04, 0.03, 0.025, 0.02, 0.0]) * (1 + 0.1 * i)
        pq.write_table(pa.table({"discard_fraction": x, "fnmr": y}), root / "curves" / f"{run_id}.parquet")
        meta = {
            "run_id": run_id, "created": f"2024-01-01T00:00:{i:02d}Z", "method": method, "fr": fr,
            "dataset": dataset, "edc_variant": "fixed-threshold",
            "seconds_per_image_mean": 0.002 * (i + 1), "seconds_per_image_std": 0.0005,
            "device": GPU if run_id == _run_id("diffiqa", "arcface", "xqlfw") else "cpu (2 cores, test)",
            "pauc": {"0.2": p2, "0.3": p3},
        }
        if method == "diffiqa":
            meta["runtime_breakdown"] = {"init": [0.1, 0.01], "forward": [0.2, 0.02], "backward": [5.0, 0.5],
                                         "fr": [1.0, 0.1], "score": [2.0, 0.2]}
        (root / "runs" / f"{run_id}.json").write_text(json.dumps(meta), encoding="utf-8")
    lines.append(pauc_line(0.3, "arcface", "diffiqa", "lfw", OTHER_PAUC, "other_settings", **OTHER_RUN))
    for run_id in ("other_settings", "other_variant"):
        pq.write_table(pa.table({"discard_fraction": [0.0, 1.0], "fnmr": [0.5, 0.0]}), root / "curves" / f"{run_id}.parquet")
    (root / "pauc.csv").write_text(",".join(PAUC_COLUMNS) + "\n" + "".join(lines), encoding="utf-8")
    (root / "runs" / "not_run.json").write_text(json.dumps([{"dataset": "adience", "reason": NOT_RUN_REASON}]))
    for method, higher in (("cr-fiqa", True), ("diffiqa", False)):
        for dataset in ("lfw", "xqlfw"):
            folder = root / "scores" / method
            folder.mkdir(parents=True, exist_ok=True)
            table = pa.table({"image_id": [f"img{k}" for k in range(200)], "score": rng.normal(size=200)})
            table = table.replace_schema_metadata({"method": method, "higher_is_better": str(higher).lower()})
            pq.write_table(table, folder / f"{dataset}.parquet")
    return root


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return write_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def published_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pub")
    build_report(None, "published", 0.3, out)
    return out


@pytest.fixture(scope="module")
def results_report(tmp_path_factory, results) -> Path:
    out = tmp_path_factory.mktemp("rep")
    build_report(results, str(results), 0.3, out)
    return out


def _md_blocks(text: str) -> dict[str, list[list[str]]]:
    """Markdown pAUC blocks: FR title -> rows of cells (header first)."""
    blocks: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        title = re.match(r"\*\*(\w+) — ", line)
        if title:
            current = blocks.setdefault(title.group(1), [])
        elif line.startswith("|") and current is not None and not line.startswith("| :"):
            current.append([c.strip() for c in line.strip("|").split("|")])
    return blocks


@pytest.mark.parametrize("discard", [0.2, 0.3])
def test_published_pauc_reproduces_paper_cell_for_cell(tmp_path, discard):
    build_report(None, "published", discard, tmp_path, tables=["pauc"])
    blocks = _md_blocks((tmp_path / "tables" / "pauc.md").read_text(encoding="utf-8"))
    paper = load_pauc()
    paper = paper[np.isclose(paper["discard"], discard)]
    assert list(blocks) == [fr_display(fr) for fr in PAPER_FR]
    checked = 0
    for fr in PAPER_FR:
        header, *rows = blocks[fr_display(fr)]
        for row in rows:
            for dataset, cell in zip(header[1:], row[1:], strict=True):
                value = paper[(paper["fr"] == fr) & (paper["method"] == row[0]) & (paper["dataset"] == dataset)]["pauc"]
                expected = "n/a" if np.isnan(value.item()) else f"{value.item():.3f}"
                assert re.sub(r"[*🟢🔵🔴 ]", "", cell) == expected, (fr, row[0], dataset)
                checked += 1
    assert checked == len(paper) == 4 * 12 * 8


def test_published_marks_follow_the_paper(published_report):
    adaface = _md_blocks((published_report / "tables" / "pauc.md").read_text(encoding="utf-8"))["AdaFace"]
    rows = {r[0]: r for r in adaface[1:]}
    # Table 2 text: CR-FIQA best AdaFace mean, DifFIQA(R) runner-up; DifFIQA(R) best on IJB-C.
    assert rows["CR-FIQA"][-1] == "0.688 🟢" and rows["DifFIQA(R)"][-1] == "0.689 🔵"
    assert rows["FaceQAN"][-1] == "0.697 🔴"
    assert rows["DifFIQA(R)"][5] == "**0.731**" and rows["SER-FIQ"][7] == "n/a"
    tex = (published_report / "tables" / "pauc.tex").read_text(encoding="utf-8")
    assert r"\textcolor{green}{0.688}" in tex and r"\textbf{0.731}" in tex and r"\toprule" in tex
    average = (published_report / "tables" / "average.md").read_text(encoding="utf-8")
    assert "0.6768 🟢" in average and "0.6800 🔵" in average and "0.6822 🔴" in average
    runtime = (published_report / "tables" / "runtime.md").read_text(encoding="utf-8")
    assert "1074.62 ± 11.45" in runtime and "0.15 ± 0.37" in runtime
    breakdown = (published_report / "tables" / "breakdown.md").read_text(encoding="utf-8")
    assert "842.041 ± 9.068" in breakdown and "1074.627 ± 11.458" in breakdown
    ablation = (published_report / "tables" / "ablation.md").read_text(encoding="utf-8")
    assert "| DifFIQA (complete) | 0.695 | **0.669** | 0.900 | 0.546 | **0.702** |" in ablation
    assert "23,124 †" in (published_report / "tables" / "datasets.md").read_text(encoding="utf-8")


def test_results_frame_latest_run_wins_and_names_are_printed(results):
    tidy, variant = results_pauc(results, 0.3)
    assert variant == "fixed-threshold"
    paper = tidy[tidy["differs"] == ""]
    cell = paper[(paper["fr"] == "arcface") & (paper["method"] == "CR-FIQA") & (paper["dataset"] == "LFW")]
    assert cell["pauc"].tolist() == [0.70]
    assert set(paper["method"]) == {"CR-FIQA", "DifFIQA", "(A1): w/o Image Flipping"}
    # The later FMR 0.1 / mean / folds 1,2 run stands beside the paper's cell, labelled; so does the other variant.
    diffiqa = paper[(paper["fr"] == "arcface") & (paper["method"] == "DifFIQA") & (paper["dataset"] == "LFW")]
    assert diffiqa["pauc"].tolist() == [0.69]
    assert dict(zip(tidy.loc[tidy["differs"] != "", "pauc"], tidy.loc[tidy["differs"] != "", "differs"])) == {
        OTHER_PAUC: "FMR 0.1; folds 1,2; quality rule mean", 0.111: "EDC recomputed-threshold"}
    recomputed, _ = results_pauc(results, 0.3, "recomputed-threshold")
    assert recomputed.loc[recomputed["differs"] == "", "pauc"].tolist() == [0.111]


def test_results_report_markdown_means_and_footnote(results_report):
    md = (results_report / "tables" / "pauc.md").read_text(encoding="utf-8")
    header, *rows = _md_blocks(md)["ArcFace"]
    assert header[:4] == ["FIQA model", "Adience rep.", "Adience pub.", "Adience Δ"]
    arcface = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    cr = arcface["CR-FIQA"]
    assert (cr["LFW rep."], cr["LFW pub."], cr["LFW Δ"]) == ("0.700", "0.675", "+0.025")
    # A mean over 2 datasets is not set against the paper's mean over 7.
    assert (cr["mean rep."], cr["mean pub."], cr["mean Δ"]) == ("0.655 🟢", "0.675", "—")
    assert [arcface["DifFIQA"][f"{d} rep."] for d in ("LFW", "XQLFW")] == ["**0.690**", "**0.550 [0.520, 0.580]**"]
    assert "CR-FIQA 2 (ArcFace)" in md and "Δ of a mean only where" in md
    # Every method configuration scored on these comparisons is a row: the ablation variant too.
    names = [row[0] for row in _md_blocks(md)["CosFace"][1:]]
    assert names[0] == "FaceQnet" and names[-1] == "(A1): w/o Image Flipping" and "DifFIQA" in names  # paper order
    # LaTeX draws the same table as Markdown and HTML: reproduced beside published.
    tex = (results_report / "tables" / "pauc.tex").read_text(encoding="utf-8")
    assert "rep." in tex and r"\textcolor{green}{0.655}" in tex


def _section(text: str, heading: str) -> str:
    """The Markdown report's text under ``## heading`` up to the next section."""
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_each_evaluation_is_its_own_table_never_under_the_papers_settings(results_report):
    report = (results_report / "report.md").read_text(encoding="utf-8")
    other = _section(report, "pAUC — FMR 0.1; folds 1,2; quality rule mean")
    assert str(OTHER_PAUC) in other and report.count(str(OTHER_PAUC)) == other.count(str(OTHER_PAUC))
    for name in ("pauc.md", "pauc.tex", "average.md"):
        assert str(OTHER_PAUC) not in (results_report / "tables" / name).read_text(encoding="utf-8"), name
    other = (results_report / "tables" / "pauc-fmr-0-1-folds-1-2-quality-rule-mean.md").read_text(encoding="utf-8")
    assert "**ArcFace — pAUC @ FMR = 0.1 (lower is better)**" in other
    assert "| DifFIQA | **0.123** |" in other  # one dataset: no mean column, no published column
    assert "Comparisons: LFW: 600 mated / 600 non-mated comparisons (paper 3,000 / 3,000)" in other
    recomputed = (results_report / "tables" / "pauc-edc-recomputed-threshold.md").read_text(encoding="utf-8")
    assert "| CR-FIQA | **0.111** |" in recomputed
    assert "published" not in other.replace("published numbers", "")
    html = (results_report / "report.html").read_text(encoding="utf-8")
    pauc_html = html.split('<section id="pauc">', 1)[1].split("</section>", 1)[0]
    assert str(OTHER_PAUC) not in pauc_html and '<section id="pauc-fmr-0-1-folds-1-2-quality-rule-mean">' in html
    # One EDC figure per group: the paper's settings (Fig. 4's grid) and the two others.
    figures = sorted(p.name for p in (results_report / "figures").glob("edc_grid*.png"))
    assert figures == ["edc_grid.png", "edc_grid_edc_recomputed_threshold.png",
                       "edc_grid_fmr_0_1_folds_1_2_quality_rule_mean.png"]


class _TableCells(HTMLParser):
    """Text of every <td> (intervals included: the page shows them), in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        if tag == "td":
            self.cells.append("")
            self._depth = 1

    def handle_endtag(self, tag):
        if tag == "td":
            self._depth = 0

    def handle_data(self, data):
        if self._depth:
            self.cells[-1] += data


def _md_cells(text: str) -> list[str]:
    lines = text.splitlines()
    cells = []
    for i, line in enumerate(lines):
        header = i + 1 < len(lines) and re.match(r"\| :?-", lines[i + 1])
        if line.startswith("|") and not re.match(r"\| :?-", line) and not header:
            cells += [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
    return cells


def _tex_cells(text: str) -> list[str]:
    """Body cells of a LaTeX table (header and block-title rows left out), markup removed."""
    cells = []
    for line in text.splitlines():
        if line.endswith(r" \\") and not line.startswith(("FIQA model", "&", " &", r"\multicolumn")):
            for cell in line[:-3].split(" & "):
                cell = re.sub(r"\\text(bf|superscript)\{|\\textcolor\{\w+\}\{|[{}]", "", cell)
                cells.append(cell.replace(r"$\pm$", "±").replace("---", "—").replace(r"\_", "_"))
    return cells


def _plain(cell: str) -> str:
    return re.sub(r"[*🟢🔵🔴\s\\]", "", cell)


def test_html_markdown_and_latex_show_the_same_tables(results_report):
    parser = _TableCells()
    parser.feed((results_report / "report.html").read_text(encoding="utf-8"))
    md = _md_cells((results_report / "report.md").read_text(encoding="utf-8"))
    assert len(parser.cells) > 300
    assert [_plain(c) for c in parser.cells] == [_plain(c) for c in md]
    for table in sorted((results_report / "tables").glob("pauc*.tex")):
        tex = _tex_cells(table.read_text(encoding="utf-8"))
        markdown = _md_cells(table.with_suffix(".md").read_text(encoding="utf-8"))
        assert len(tex) >= 2 and [_plain(c) for c in tex] == [_plain(c) for c in markdown], table.name


def test_published_only_blocks_come_last_or_not_at_all(results, results_report, tmp_path):
    report = (results_report / "report.md").read_text(encoding="utf-8")
    assert report.rstrip().rsplit("\n## ", 1)[1].startswith("Published only")
    only = _section(report + "\n## end", "Published only")
    assert "**AdaFace — " in only and "**CurricularFace — " in only and "**ArcFace — " not in only
    compared = (results_report / "tables" / "pauc.md").read_text(encoding="utf-8")
    assert list(_md_blocks(compared)) == ["ArcFace", "CosFace"]
    build_report(results, "r", 0.3, tmp_path, tables=["pauc"], published_blocks=False)
    assert "AdaFace" not in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "AdaFace" not in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_cells_say_their_counts_and_intervals(results, results_report, tmp_path):
    md = (results_report / "tables" / "pauc.md").read_text(encoding="utf-8")
    # Every CALFW cell has the same counts: said once, in the caption, not by a marker per cell.
    counts = "2,990 mated / 3,000 non-mated comparisons (paper 3,000 / 3,000)"
    assert f"Comparisons: CALFW: {counts}." in md and "| **0.900** |" in md
    assert "**0.550 [0.520, 0.580]**" in md  # intervals shown
    html = (results_report / "report.html").read_text(encoding="utf-8")
    assert ('title="95 % bootstrap interval 0.520 – 0.580"><b>0.550</b><span class="ci"> [0.520, 0.580]</span>'
            in html and '<input type="checkbox" id="show-ci" class="toggle" checked>' in html
            and "#show-ci:checked ~ section span.ci" in html)
    assert r"\textbf{0.550 [0.520, 0.580]}" in (results_report / "tables" / "pauc.tex").read_text(encoding="utf-8")
    build_report(results, "r", 0.3, tmp_path, tables=["pauc"], ci=False)
    assert "[0.520, 0.580]**" not in (tmp_path / "tables" / "pauc.md").read_text(encoding="utf-8")
    assert "[0.520, 0.580]}" not in (tmp_path / "tables" / "pauc.tex").read_text(encoding="utf-8")
    assert '<input type="checkbox" id="show-ci" class="toggle">' in (tmp_path / "report.html").read_text(encoding="utf-8")
    # Counts unlike the rest of their column keep a marker on the cell.
    uneven = tmp_path / "uneven"
    shutil.copytree(results, uneven)
    text = (uneven / "pauc.csv").read_text(encoding="utf-8")
    text += pauc_line(0.3, "arcface", "cr-fiqa", "calfw", 0.8, "cr_calfw")
    (uneven / "pauc.csv").write_text(text, encoding="utf-8")
    build_report(uneven, "r", 0.3, tmp_path / "u", tables=["pauc"])
    md = (tmp_path / "u" / "tables" / "pauc.md").read_text(encoding="utf-8")
    assert "**0.800**" in md and "0.900 [2]" in md and f"[2] {counts}" in md and "Comparisons: CALFW" not in md


def test_runtime_ratio_only_for_the_papers_device_class(results_report):
    rows = {line.split("|")[1].strip(): line for line in
            (results_report / "tables" / "runtime.md").read_text(encoding="utf-8").splitlines() if line.startswith("|")}
    # CR-FIQA timed on a CPU: both times, no ratio; DifFIQA on a GPU like the paper's: a ratio.
    assert "4.00 ± 0.50" in rows["CR-FIQA"] and "0.15 ± 0.37" in rows["CR-FIQA"]
    assert rows["CR-FIQA"].rstrip().endswith("| — |") and "×" not in rows["CR-FIQA"]
    assert rows["DifFIQA"].rstrip().endswith("| ×0.01 |")
    assert "only for runs on a GPU" in (results_report / "tables" / "runtime.md").read_text(encoding="utf-8")


def test_report_source_defaults_to_bench_results(results, tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setenv("BENCH_RESULTS", str(results))
    assert main(["report", "--out", str(tmp_path / "a"), "--table", "pauc"]) == 0
    assert "- numbers: reproduced" in (tmp_path / "a" / "report.md").read_text(encoding="utf-8")
    monkeypatch.delenv("BENCH_RESULTS")
    assert main(["report", "--out", str(tmp_path / "b"), "--table", "pauc"]) == 0
    assert "- numbers: published" in (tmp_path / "b" / "report.md").read_text(encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "400")
    capsys.readouterr()
    for command, defaults in (("report", ("default: $BENCH_RESULTS when set, else published", "default: 0.3",
                                          "default: ./bench-report")),
                              ("check", ("default: $BENCH_RESULTS, else ./bench-results", "default: 0.0005",
                                         "default: fixed-threshold"))):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert all(d in out for d in defaults), (command, out)


def test_results_html_compares_with_published(results_report):
    html = (results_report / "report.html").read_text(encoding="utf-8")
    # reproduced | published | delta for ArcFace CR-FIQA LFW: 0.700 vs 0.675.
    assert re.search(r'<td class="value[^"]*">(<b>)?0\.700(</b>)?</td><td class="published">0\.675</td>'
                     r'<td class="delta pos">\+0\.025</td>', html)
    assert "not run" in html and NOT_RUN_REASON.replace("<", "&lt;").replace(">", "&gt;") in html
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert html.count('src="data:image/png;base64,') == 5  # EDC grid, score distributions, one EDC figure per other setting (2), agreement heat-map
    for section in ("pauc", "average", "runtime", "ablation", "breakdown", "edc", "scores"):
        assert f'<section id="{section}">' in html
    assert "cpu (2 cores, test)" in html and "(A1): w/o Image Flipping" in html


def test_report_is_byte_stable(results, results_report, tmp_path):
    again = build_report(results, str(results), 0.3, tmp_path)
    first = sorted(p for p in results_report.rglob("*") if p.is_file())
    assert [p.relative_to(results_report) for p in first] == [p.relative_to(tmp_path) for p in again]
    assert {p.suffix for p in again} == {".html", ".md", ".tex", ".png", ".pdf"}
    for a, b in zip(first, again, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_discard_changes_pauc_and_plot_range(results, results_report, tmp_path):
    build_report(results, "r", 0.2, tmp_path, tables=["pauc", "edc"])
    assert "0.740" in (tmp_path / "tables" / "pauc.md").read_text(encoding="utf-8")
    assert "pAUC at discard 0.2" in (tmp_path / "tables" / "pauc.tex").read_text(encoding="utf-8")
    png = (tmp_path / "figures" / "edc_grid.png").read_bytes()
    assert png != (results_report / "figures" / "edc_grid.png").read_bytes()


def test_edc_grid_layout_and_step_curves():
    curves = pd.DataFrame({
        "fr": ["arcface"] * 4 + ["cosface"] * 4, "method": ["M"] * 8, "dataset": ["LFW"] * 8,
        "discard_fraction": [0.0, 0.1, 0.2, 1.0] * 2, "fnmr": [0.04, 0.03, 0.02, 0.0] * 2,
    })
    fig = edc_grid(curves, 0.3)
    image = Image.open(io.BytesIO(fig.png))
    assert image.size[0] > image.size[1]  # one dataset row, two FR columns
    assert fig.pdf.startswith(b"%PDF") and b"CreationDate" not in fig.pdf
    assert "non-interpolated" in fig.caption.lower() or "Non-interpolated" in fig.caption


def test_score_figure_caption_says_normalised(results_report):
    md = (results_report / "report.md").read_text(encoding="utf-8")
    assert "min-max normalised per method" in md
    assert Image.open(results_report / "figures" / "score_distributions.png").size[0] > 100


def test_reasons_argument_overrides_not_run_file(results, tmp_path):
    reasons = {("arcface", "CR-FIQA", "CALFW"): "weights missing: weights/cr-fiqa.pth"}
    build_report(results, "r", 0.3, tmp_path, tables=["pauc"], reasons=reasons)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "weights missing: weights/cr-fiqa.pth" in html


def test_table1_shows_differences_and_missing():
    frame = pd.DataFrame({
        "dataset": ["LFW", "CALFW"], "images": pd.array([13233, None], dtype="Int64"),
        "identities": pd.array([5749, None], dtype="Int64"), "mated": pd.array([2990, None], dtype="Int64"),
        "nonmated": pd.array([3000, None], dtype="Int64"), "published_images": [13233, 12174],
        "published_identities": [5749, 4025], "published_mated": [3000, 3000], "published_nonmated": [3000, 3000],
        "differs": ["mated 2,990 vs 3,000", "calfw: not found"],
    })
    from bench.report.render import render_markdown

    md = render_markdown(render_table1(frame))
    assert "| CALFW | — | — | — | — |" in md
    assert "2,990 (paper 3,000)" in md and "LFW: mated 2,990 vs 3,000" in md


def test_drift_markdown():
    frame = pd.DataFrame({
        "discard": [0.3, 0.3, 0.3], "fr": ["arcface"] * 3, "method": ["DifFIQA", "CR-FIQA", "PFE"],
        "dataset": ["LFW"] * 3, "reproduced": [0.6951, 0.7, np.nan], "published": [0.695, 0.675, 0.779],
        "delta": [0.0001, 0.025, np.nan], "status": ["match", "drift", "not reproduced"],
    })
    md = render_drift_markdown(frame)
    assert "| arcface | CR-FIQA | LFW | 0.3 | 0.7000 | 0.675 | +0.0250 | **drift** |" in md
    assert "1 match, 1 drift, 1 not reproduced" in md and "PFE" not in md
    assert "PFE" in render_drift_markdown(frame, show_not_reproduced=True)
    with pytest.raises(DataError, match="unknown status"):
        render_drift_markdown(frame.assign(status="weird"))


def test_bad_inputs_fail_with_one_line(results, tmp_path):
    with pytest.raises(BenchError, match="unknown report table 'table9'"):
        build_report(None, "published", 0.3, tmp_path, tables=["table9"])
    with pytest.raises(DataError, match="pauc.csv: not found"):
        build_report(tmp_path / "nothing", "x", 0.3, tmp_path / "o")
    with pytest.raises(DataError, match="no rows at discard 0.25"):
        build_report(results, "x", 0.25, tmp_path / "o")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BenchError, match=r"--out .*file: .*is a file, not a folder"):
        build_report(None, "published", 0.3, tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"
    broken = tmp_path / "broken"
    shutil.copytree(results, broken)
    (broken / "curves" / f"{_run_id('diffiqa', 'arcface', 'lfw')}.parquet").unlink()
    with pytest.raises(DataError, match="EDC curve of run diffiqa_arcface_lfw not found"):
        build_report(broken, "x", 0.3, tmp_path / "o", tables=["edc"])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Per image: decoded size, the start of its data: URI and the pixel variance of the decoded
# image drawn onto a 32 x 32 canvas (0 = blank or one flat colour).
PROBE = """<script>
window.addEventListener("load", () => {
  const canvas = document.createElement("canvas"); canvas.width = canvas.height = 32;
  const ctx = canvas.getContext("2d");
  const variance = (img) => {
    ctx.clearRect(0, 0, 32, 32); ctx.drawImage(img, 0, 0, 32, 32);
    const px = ctx.getImageData(0, 0, 32, 32).data; let sum = 0, sq = 0, n = 0;
    for (let k = 0; k < px.length; k += 4) { const v = (px[k] + px[k + 1] + px[k + 2]) / 3; sum += v; sq += v * v; n++; }
    return (sq / n - (sum / n) ** 2).toFixed(1);
  };
  const imgs = [...document.images].map(i => i.naturalWidth + "x" + i.naturalHeight + ":" + i.src.slice(0, 22) + ":" + variance(i));
  const out = document.createElement("pre"); out.id = "probe"; out.textContent = imgs.join("|");
  document.body.appendChild(out);
});
</script>"""


class _Cells(HTMLParser):
    """Collects the text of every <td>, every <li> and the #probe element."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.probe = ""
        self.notes: list[str] = []
        self._where: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "td":
            self._where, self.cells = "td", [*self.cells, ""]
        elif tag == "li":
            self._where, self.notes = "li", [*self.notes, ""]
        elif tag == "pre" and ("id", "probe") in attrs:
            self._where = "probe"

    def handle_endtag(self, tag):
        if tag in ("td", "pre", "li"):
            self._where = None

    def handle_data(self, data):
        if self._where == "td":
            self.cells[-1] += data
        elif self._where == "li":
            self.notes[-1] += data
        elif self._where == "probe":
            self.probe += data


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package `chromium`)")
def test_html_renders_in_headless_chromium(results, tmp_path):
    from test_report_visuals import write_cache, write_examples

    # The results folder plus what the faces need: LFW crops of its score files' images and a
    # DifFIQA reconstruction examples file (2 rows of input, x_t, reconstruction and flips).
    shown = tmp_path / "results"
    shutil.copytree(results, shown)
    write_examples(shown / "scores" / "diffiqa" / "lfw__arcface.examples.npz")
    write_cache(tmp_path / "cache", "lfw", [f"img{k}" for k in range(200)], domain="arcface112")
    report = tmp_path / "report"
    build_report(shown, str(results), 0.3, report, cache=tmp_path / "cache")
    page = tmp_path / "page.html"
    html = (report / "report.html").read_text(encoding="utf-8")
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    parser = _Cells()
    parser.feed(done.stdout)
    assert "0.700" in parser.cells and "0.675" in parser.cells and "+0.025" in parser.cells
    assert "not run[1]" in parser.cells and f"[1] not run: {NOT_RUN_REASON}" in parser.notes
    images = [image.split(":") for image in parser.probe.split("|")]
    figures = [i for i in images if i[2].startswith("image/png;")]
    faces = [i for i in images if i[2].startswith("image/jpeg;")]
    assert len(figures) + len(faces) == len(images), parser.probe
    assert len(figures) == 5, parser.probe  # EDC grid, scores, 2 other-setting EDC figures, agreement heat-map
    # LFW strips of CR-FIQA and DifFIQA (8 quantiles + lowest 8 each), side by side (8), 2 rows x 5 reconstructions
    assert len(faces) == 2 * (8 + 8) + 8 + 2 * 5, parser.probe
    for smallest, group in ((100, figures), (72, faces)):
        for size, _, _, variance in group:
            assert min(map(int, size.split("x"))) >= smallest and float(variance) > 1.0, parser.probe


def test_average_delta_only_when_cells_match_the_published_ones() -> None:
    from bench.report import frames as fr_mod
    from bench.results.published import load_pauc

    pub = load_pauc()
    pub = pub[pub["discard"] == 0.3]
    full = pub[pub["method"] == "DifFIQA"]  # every published DifFIQA cell, reproduced exactly
    partial = pd.DataFrame({"discard": [0.3], "fr": ["arcface"], "method": ["FaceQAN"], "dataset": ["LFW"], "pauc": [0.6]})
    frame = pd.concat([full[full["dataset"] != "mean"], partial], ignore_index=True)
    avg = fr_mod.averages(fr_mod.add_means(frame), pub).set_index("method")
    assert bool(avg.loc["DifFIQA", "comparable"]) and not bool(avg.loc["FaceQAN", "comparable"])
    assert avg.loc["DifFIQA", "pauc"] == pytest.approx(0.6822, abs=0.00055)
