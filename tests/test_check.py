"""``bench check``: only rows of the paper's protocol are compared with the published pAUC (issue 10).

Results folders are written the way ``bench run`` writes ``pauc.csv`` (docs/RESULTS_FORMAT.md),
or with only the published columns (numbers made by other code).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report import pauc_line

from bench.cli import main
from bench.results.check import compare_published, load_results
from bench.results.table import PAUC_COLUMNS

# Published ArcFace pAUC at 0.3: DifFIQA LFW 0.695, CALFW 0.900.
PAPER = pauc_line(0.3, "arcface", "diffiqa", "lfw", 0.695, "paper")
ONE_FOLD = pauc_line(0.3, "arcface", "diffiqa", "lfw", 0.300, "one_fold", folds="1,2", n_mated="600", n_nonmated="600")
FMR_MEAN = pauc_line(0.3, "arcface", "diffiqa", "lfw", 0.200, "fmr_mean", fmr="0.1", quality_rule="mean")


def _results(root: Path, *lines: str, header: str = ",".join(PAUC_COLUMNS)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pauc.csv").write_text(header + "\n" + "".join(lines), encoding="utf-8")
    return root


def _rows(table, method: str = "DifFIQA", dataset: str = "LFW"):
    return table[(table["fr"] == "arcface") & (table["method"] == method) & (table["dataset"] == dataset)
                 & (table["discard"] == 0.3)]


def test_other_settings_never_replace_or_meet_the_published_cell(tmp_path):
    # The paper-protocol row first, then later runs with other settings: "latest wins" must not apply across them.
    table = compare_published(load_results(_results(tmp_path, PAPER, ONE_FOLD, FMR_MEAN)))
    rows = _rows(table).set_index("status")
    assert rows.loc["match", "reproduced"] == 0.695
    assert rows.loc["other protocol (folds 1,2)", "reproduced"] == 0.300
    assert rows.loc["other protocol (FMR 0.1; quality rule mean)", "reproduced"] == 0.200
    others = rows[rows.index.str.startswith("other protocol")]
    assert others["published"].isna().all() and others["delta"].isna().all()


def test_one_fold_row_alone_is_not_compared(tmp_path, capsys):
    res = _results(tmp_path, ONE_FOLD)
    assert main(["check", "--results", str(res)]) == 0  # 0.300 vs 0.695 would be a drift if compared
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "0.3000" in x)
    assert line.rstrip().endswith("other protocol (folds 1,2)") and "0.695" not in line and "drift" not in out
    assert "other protocol: 1" in out
    table = compare_published(load_results(res))
    assert _rows(table).set_index("status").loc["not reproduced", "published"] == 0.695
    assert main(["check", "--results", str(res), "--strict"]) == 1  # the published cell is not reproduced


def test_other_edc_variant_is_listed_not_compared(tmp_path, capsys):
    res = _results(tmp_path, pauc_line(0.3, "arcface", "diffiqa", "lfw", 0.5, "r", edc_variant="recomputed-threshold"))
    assert main(["check", "--results", str(res)]) == 0
    assert "other protocol (EDC recomputed-threshold)" in capsys.readouterr().out
    assert main(["check", "--results", str(res), "--edc-variant", "recomputed-threshold"]) == 1  # 0.5 vs 0.695
    assert "drift" in capsys.readouterr().out


def test_published_columns_only_file_is_checked_and_says_so(tmp_path, capsys):
    res = _results(tmp_path, "0.3,arcface,DifFIQA,LFW,0.695\n", "0.3,arcface,DifFIQA,CALFW,0.950\n",
                   header="discard,fr,method,dataset,pauc")
    assert main(["check", "--results", str(res)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("pauc.csv has only the published columns: read as the paper's protocol (all folds, "
                             "FMR 0.001, quality rule min")
    assert any(x.endswith("match") and "LFW" in x for x in out) and any("+0.0500" in x and "drift" in x for x in out)


def test_check_reads_bench_results_without_results_option(tmp_path, monkeypatch, capsys):
    res = _results(tmp_path / "res", PAPER)
    monkeypatch.setenv("BENCH_RESULTS", str(res))
    assert main(["check"]) == 0
    assert "match: 1" in capsys.readouterr().out


def test_drift_report_lists_other_protocol_rows(tmp_path):
    res = _results(tmp_path / "res", PAPER, ONE_FOLD)
    out = tmp_path / "drift.md"
    assert main(["check", "--results", str(res), "--report", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "| arcface | DifFIQA | LFW | 0.3 | 0.3000 |  | — | other protocol (folds 1,2) |" in text
    assert "1 match" in text and "1 other protocol" in text


@pytest.mark.parametrize(("argv", "expect"), [
    (["check", "--results", "{res}", "--edc-variant", "foo"], "--edc-variant foo: unknown EDC variant"),
    (["report", "--source", "{res}", "--edc-variant", "foo", "--out", "{res}/o"], "--edc-variant foo"),
])
def test_unknown_edc_variant_is_one_error_line(tmp_path, capsys, argv, expect):
    res = _results(tmp_path / "res", PAPER)
    assert main([a.format(res=res) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expect in err
    assert not (res / "o").exists()
