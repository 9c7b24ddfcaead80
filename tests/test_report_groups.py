"""Issue 27: reports grouped by evaluation.

Rows scored on the same comparisons (dataset, folds, FR model, FMR, EDC variant, rules) share
a table and an EDC figure whatever their method configuration; seeds of one configuration are
one row; FR models given as files are named by stem and hash, never by path. The results folder
is written the way ``bench run`` writes one (docs/RESULTS_FORMAT.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_report import pauc_line

from bench.report import build_report
from bench.report.names import fr_name, onnx_name
from bench.results.table import PAUC_COLUMNS

MFN_PATH = "onnx:" + "/" + "data/lab-machine/models/mfn.onnx"  # where the file lay on the machine that ran it
MFN_HASH = "ab12cd34" + "0" * 56
MFN = "onnx:mfn-ab12cd34"
SEEDS = {0: 1.02, 1: 0.98, 2: 1.05, 3: 0.95}  # random on dlib x LFW, all folds
UNDEFINED = "FNMR is 0 at zero discard"
REPEATS = '{"repeats":1}'


def _run(root: Path, run_id: str, fr: str, method: str, k: int) -> None:
    """The run file and EDC curve of one run (k shifts the curve)."""
    x = np.array([0.0, 0.1, 0.2, 0.3, 1.0])
    y = np.array([0.05, 0.04, 0.035, 0.03, 0.0]) * (1 + 0.05 * k)
    pq.write_table(pa.table({"discard_fraction": x, "fnmr": y}), root / "curves" / f"{run_id}.parquet")
    record = {"run_id": run_id, "method": method, "fr": fr, "fr_provenance": {"fr_weights_sha256": MFN_HASH if fr == MFN_PATH else "none"},
              "score_provenance": {"quality_fr_weights_sha256": "none"}}
    (root / "runs" / f"{run_id}.json").write_text(json.dumps(record), encoding="utf-8")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("groups")
    (root / "runs").mkdir()
    (root / "curves").mkdir()
    cells = [  # (fr, method, dataset, pauc, run_id, changes)
        ("dlib", "oracle", "lfw", 0.10, "o-lfw", {}),
        ("dlib", "diffiqa", "lfw", 0.70, "d-paper", {}),
        ("dlib", "diffiqa", "lfw", 0.76, "d-n1", {"quality_fr": "dlib-torch", "method_options": REPEATS}),
        ("dlib", "ser-fiq", "lfw", 0.85, "s-lfw", {"quality_fr": "dlib-torch"}),
        ("dlib", "oracle", "cfp-fp", 0.90, "o-cfp", {}),
        (MFN_PATH, "oracle", "lfw", 0.06, "o-mfn", {}),
        ("dlib", "oracle", "lfw", 0.12, "o-f12", {"folds": "1,2", "n_mated": "600", "n_nonmated": "600"}),
        ("dlib", "diffiqa-noflip", "lfw", 0.86, "a1-f12", {"folds": "1,2", "n_mated": "600", "n_nonmated": "600"}),
        ("dlib", "random", "lfw", float("nan"), "r-f3", {"folds": "3", "pauc_note": UNDEFINED}),
        ("dlib", "oracle", "lfw", 0.2, "o-f3", {"folds": "3"}),
    ]
    cells += [("dlib", "random", "lfw", v, f"r-lfw-{s}", {"seed": str(s)}) for s, v in SEEDS.items()]
    cells += [("dlib", "random", "cfp-fp", 1.0 + s / 100, f"r-cfp-{s}", {"seed": str(s)}) for s in SEEDS]
    lines = []
    for k, (fr, method, dataset, pauc, run_id, changes) in enumerate(cells):
        lines.append(pauc_line(0.3, fr, method, dataset, pauc, run_id, **changes))
        _run(root, run_id, fr, method, k)
    (root / "pauc.csv").write_text(",".join(PAUC_COLUMNS) + "\n" + "".join(lines), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def report(results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    build_report(results, "r", 0.3, out, tables=["pauc", "edc"], published_blocks=False)
    return out


def _rows(md: str, block: str) -> dict[str, list[str]]:
    """Markdown rows of one FR block: label -> cells."""
    text = md.split(f"**{block} — ", 1)[1].split("\n\n**", 1)[0].split("\n- ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| :")]
    return {r[0]: r[1:] for r in rows[1:]}


def test_one_evaluation_is_one_table_with_every_configuration_as_a_row(report: Path) -> None:
    assert sorted(p.name for p in (report / "tables").glob("*.md")) == [
        "pauc-folds-1-2.md", "pauc-folds-3.md", "pauc.md"]
    md = (report / "tables" / "pauc.md").read_text(encoding="utf-8")
    # The paper's layout: datasets as columns, FR models as blocks; both FR models in one table.
    assert "| FIQA model | CFP-FP | LFW | mean |" in md and f"**{MFN} — " in md
    dlib = _rows(md, "dlib")
    # Two configurations of DifFIQA on one evaluation: two rows, told apart; the paper's first.
    assert list(dlib) == ["SER-FIQ [1]", "DifFIQA", "DifFIQA (quality FR dlib-torch; repeats = 1) [2]", "oracle",
                          "random (4 seeds)"]
    assert dlib["DifFIQA"][1] == "0.700" and dlib["DifFIQA (quality FR dlib-torch; repeats = 1) [2]"][1] == "0.760"
    assert dlib["oracle"] == ["**0.900**", "**0.100**", "0.500 🟢"]
    assert "[1] SER-FIQ: quality FR dlib-torch (paper: the evaluating FR model)." in md
    assert "[2] DifFIQA (quality FR dlib-torch; repeats = 1): quality FR dlib-torch (paper: CosFace); " \
           "repeats = 1 (paper: 10)." in md
    folds = (report / "tables" / "pauc-folds-1-2.md").read_text(encoding="utf-8")
    assert list(_rows(folds, "dlib")) == ["(A1): w/o Image Flipping", "oracle"]
    assert "Comparisons: LFW: 600 mated / 600 non-mated comparisons (paper 3,000 / 3,000)." in folds
    report_md = (report / "report.md").read_text(encoding="utf-8")
    assert report_md.count("\n## pAUC — ") == 3 and report_md.count("\n## EDC curves — ") == 3


def test_seeds_of_a_configuration_are_one_row_mean_and_sd(report: Path) -> None:
    md = (report / "tables" / "pauc.md").read_text(encoding="utf-8")
    values = np.array(list(SEEDS.values()))
    mean, sd = values.mean(), values.std(ddof=1)
    lfw = _rows(md, "dlib")["random (4 seeds)"][1]
    marker = re.fullmatch(rf"{mean:.3f} ± {sd:.3f} (\[\d+\])", lfw)
    assert marker, lfw
    per_seed = ", ".join(f"seed {s} {v:.3f}" for s, v in SEEDS.items())
    assert f"- {marker.group(1)} random (4 seeds), dlib, LFW: mean ± sd over 4 seeds; {per_seed}" in md
    assert "value ± sd: a seeded method's mean over its seeds" in md
    html = (report / "report.html").read_text(encoding="utf-8")
    assert re.search(rf'title="random \(4 seeds\), dlib, LFW: mean ± sd over 4 seeds; {per_seed}">'
                     rf"{mean:.3f} ± {sd:.3f}<sup>", html)


def test_display_names_are_never_paths(results: Path, report: Path) -> None:
    assert onnx_name("onnx:" + "/" + "x/y/mobilefacenet-112.onnx", "0C9AD2A8" + "f" * 56) == \
        "onnx:mobilefacenet-112-0c9ad2a8"
    assert onnx_name("onnx:mobilefacenet-112-0c9ad2a8", "0c9ad2a8" + "f" * 56) == "onnx:mobilefacenet-112-0c9ad2a8"
    assert onnx_name("onnx:C:\\models\\m.onnx") == "onnx:m"
    assert fr_name("cosface") == "CosFace" and fr_name("dlib") == "dlib" and fr_name(MFN_PATH, MFN_HASH) == MFN
    assert "/" not in fr_name("some/where/fr-model")
    md = (report / "report.md").read_text(encoding="utf-8")
    # FR models (block titles, figure panels) and datasets (column heads) by name; methods by
    # their cards' printed names, whose only "/" is the paper's own "w/o".
    titles = re.findall(r"^\*\*(.+?) — pAUC", md, flags=re.MULTILINE)
    heads = [c.strip() for line in md.splitlines() if line.startswith("| FIQA model") for c in line.split("|")[2:]]
    labels = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert set(titles) == {"dlib", MFN} and set(heads) == {"CFP-FP", "LFW", "mean", ""}
    assert [label for label in labels if "/" in label] == ["(A1): w/o Image Flipping"]
    written = [p for p in report.rglob("*") if p.is_file()]
    leaked = [p.name for p in written if b"lab-machine" in p.read_bytes()]
    assert not leaked and any(MFN.encode() in p.read_bytes() for p in written if p.suffix == ".html")


def test_undefined_pauc_reads_n_a_with_its_reason(report: Path) -> None:
    md = (report / "tables" / "pauc-folds-3.md").read_text(encoding="utf-8")
    cell = _rows(md, "dlib")["random"][0]
    marker = re.fullmatch(r"n/a (\[\d+\])", cell)
    assert marker, cell
    assert f"- {marker.group(1)} n/a: {UNDEFINED}" in md
    assert _rows(md, "dlib")["oracle"] == ["**0.200**"]  # the defined row is still the best of its column


def test_report_opens_with_what_it_shows_and_empty_sections_are_one_line(results: Path, tmp_path: Path) -> None:
    build_report(results, "r", 0.3, tmp_path, tables=["pauc", "edc", "average", "scores"])
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert ("**Your results: 2 datasets × 2 FR models, 5 methods (6 configurations) in 3 evaluation groups; "
            "nothing matches the paper's protocol (no FR model of the paper), so no Δ column.**") in md
    assert "**Score distributions:** _No score files under scores/._" in md and "## Score distributions" not in md
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<p class="headline">Your results: 2 datasets' in html
    assert '<section id="scores" class="empty">' in html


def test_one_edc_figure_per_group_at_full_width(report: Path) -> None:
    figures = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert figures == ["edc_grid.png", "edc_grid_folds_1_2.png", "edc_grid_folds_3.png"]
    for name in figures:
        width, height = Image.open(report / "figures" / name).size
        assert width >= 800 and height >= 300, (name, width, height)
    # The grid of the first group: 2 datasets x 2 FR models, each panel about 6 in at 100 dpi.
    assert Image.open(report / "figures" / "edc_grid.png").size[0] >= 1200


def test_latex_of_the_grouped_tables_is_ascii(report: Path) -> None:
    # Seeds' "±", the headline's "×", ranges' "–": pdflatex needs them mapped.
    for path in [report / "report.tex", *(report / "tables").glob("*.tex")]:
        text = path.read_text(encoding="utf-8")
        assert text.isascii(), (path.name, sorted({ch for ch in text if not ch.isascii()}))
    assert r"$\pm$" in (report / "tables" / "pauc.tex").read_text(encoding="utf-8")


def test_only_rows_run_as_the_paper_get_a_delta(tmp_path: Path) -> None:
    root = tmp_path / "res"
    (root / "runs").mkdir(parents=True)
    (root / "curves").mkdir()
    cells = [("cr-fiqa", 0.70, "cr", {}), ("diffiqa", 0.72, "dq", {"method_options": REPEATS})]
    lines = []
    for k, (method, pauc, run_id, changes) in enumerate(cells):
        lines.append(pauc_line(0.3, "arcface", method, "lfw", pauc, run_id, **changes))
        _run(root, run_id, "arcface", method, k)
    (root / "pauc.csv").write_text(",".join(PAUC_COLUMNS) + "\n" + "".join(lines), encoding="utf-8")
    build_report(root, "r", 0.3, tmp_path / "out", tables=["pauc"], published_blocks=False)
    md = (tmp_path / "out" / "tables" / "pauc.md").read_text(encoding="utf-8")
    arcface = _rows(md, "ArcFace")
    lfw = slice(15, 18)  # Adience, CALFW, CFP-FP, CPLFW, IJB-C before LFW: rep. | pub. | Δ each
    assert arcface["CR-FIQA"][lfw] == ["**0.700**", "0.675", "+0.025"]
    # DifFIQA n = 1 stands beside the paper's DifFIQA (n = 10) without a Δ, its difference in a footnote.
    (label,) = [k for k in arcface if k.startswith("DifFIQA ")]
    assert arcface[label][lfw] == ["0.720", "0.695", "—"]
    assert "repeats = 1 (paper: 10)" in md and "Δ only for rows run as the paper ran the method" in md
    headline = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert ("1 cell matches the paper's protocol, so the first table sets it beside the published values (Δ)."
            in headline)
