"""An undefined pAUC is a value of its own, with its reason (issue 22, item 2).

A cell whose FNMR at discard 0 is 0 has no normalised pAUC. Its rows are written with an
empty pauc and the reason in ``pauc_note``; `bench check` skips and counts them, reports
print n/a with the reason, and nothing else in the folder is refused because of them.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.core.errors import DataError
from bench.core.records import NOTE_NOT_RECORDED, PAUC_COLUMNS, PAUC_COLUMNS_BEFORE_NOTE
from bench.results.published import source_dir
from bench.results.table import NOT_REPORTED, read_pauc_csv
from bench.stats import edc

REASON = "FNMR is 0 at zero discard (no false non-match to remove)"
# On the synthetic dataset a threshold at FMR 0.95 leaves no mated comparison below it.
NO_ERRORS = ["--fmr", "0.95"]


def _run(results: Path, method: str, *extra: str) -> int:
    return main(["run", "--method", method, "--fr", "synthetic", "--dataset", "synthetic", "--results", str(results),
                 "--cache", str(results.parent / "cache"), "--bootstrap", "0", "--no-progress", *extra])


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_a_cell_without_errors_at_zero_discard_is_written_undefined_and_poisons_nothing(tmp_path, capsys):
    res = tmp_path / "res"
    assert _run(res, "oracle", *NO_ERRORS) == 0
    said = capsys.readouterr()
    assert f"pAUC undefined: {REASON}" in said.err and "pAUC@0.2=n/a  pAUC@0.3=n/a" in said.out
    rows = _rows(res / "pauc.csv")
    assert [(r["pauc"], r["pauc_note"]) for r in rows] == [("", REASON)] * 2
    assert _run(res, "random") == 0
    frame = read_pauc_csv(res)
    assert frame["pauc"].isna().sum() == 2 and (frame.loc[frame["pauc"].isna(), "pauc_note"] == REASON).all()
    assert frame.loc[frame["method"] == "random", "pauc"].between(0.5, 1.5).all()
    capsys.readouterr()

    assert main(["check", "--results", str(res), "--report", str(tmp_path / "drift.md")]) == 0
    out = capsys.readouterr().out
    assert f"2 cells undefined (not compared): 0.2 synthetic oracle Synthetic: {REASON}" in out
    assert f"n/a ({REASON})" in (tmp_path / "drift.md").read_text(encoding="utf-8")

    assert main(["report", "--source", str(res), "--out", str(tmp_path / "rep"), "--discard", "0.3", "--no-images"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert f"n/a: {REASON}" in md  # the footnote of the n/a cell
    assert any(line.startswith("| oracle") and "n/a" in line for line in md.splitlines())


def test_the_published_table_checks_against_itself_with_its_na_cells_counted(capsys):
    assert main(["check", "--results", str(source_dir())]) == 0
    out = capsys.readouterr().out
    assert "drift" not in out.replace("drift:", "")
    assert f"8 cells undefined (not compared): 0.2 adaface SER-FIQ XQLFW: {NOT_REPORTED}" in out


def test_undefined_on_both_sides_of_a_reference_is_counted_and_on_one_side_drifts(tmp_path, capsys):
    res = tmp_path / "res"
    assert _run(res, "oracle", *NO_ERRORS) == 0 and _run(res, "random") == 0
    assert main(["reference", "freeze", str(tmp_path / "ref"), "--results", str(res)]) == 0
    capsys.readouterr()
    assert main(["check", "--results", str(res), "--against", str(tmp_path / "ref")]) == 0
    out = capsys.readouterr().out
    assert "2 undefined" in out and "2 cells undefined on both sides (not compared)" in out and "| n/a |" in out
    # The same cell with a number in our results: no longer the reference's cell.
    text = (res / "pauc.csv").read_text(encoding="utf-8").replace(REASON, "")
    (res / "pauc.csv").write_text(text.replace("synthetic,oracle,synthetic,,", "synthetic,oracle,synthetic,0.5,"))
    assert main(["check", "--results", str(res), "--against", str(tmp_path / "ref")]) == 1
    assert f"DRIFT (pAUC undefined in the reference ({REASON}))" in capsys.readouterr().out


def _old_format(path: Path, *paucs: str) -> None:
    """A pauc.csv as written before ``pauc_note`` existed (its nan: the old runner's undefined pAUC)."""
    row = dict.fromkeys(PAUC_COLUMNS_BEFORE_NOTE, "")
    row.update(discard="0.3", fr="synthetic", method="random", dataset="synthetic", edc_variant="fixed-threshold",
               fmr="0.001", folds="all", quality_rule="min", template_rule="min", quality_fr="none",
               method_options="{}", fr_options="{}", seed="0", n_mated="400", n_nonmated="400", run_id="old")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PAUC_COLUMNS_BEFORE_NOTE)
    writer.writerows([[{**row, "pauc": p}[c] for c in PAUC_COLUMNS_BEFORE_NOTE] for p in paucs])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue(), encoding="utf-8")


def test_a_file_written_before_pauc_note_is_read_and_gains_the_column_on_the_next_run(tmp_path):
    res = tmp_path / "res"
    _old_format(res / "pauc.csv", "0.9", "nan")
    frame = read_pauc_csv(res)
    assert frame["pauc"].tolist()[0] == 0.9 and np.isnan(frame["pauc"].tolist()[1])
    assert frame["pauc_note"].tolist() == ["", NOTE_NOT_RECORDED]
    old_lines = (res / "pauc.csv").read_text().splitlines()[1:]
    assert _run(res, "random") == 0
    lines = (res / "pauc.csv").read_text().splitlines()
    assert tuple(lines[0].split(",")) == PAUC_COLUMNS
    assert lines[1] == old_lines[0] + "," and lines[2] == old_lines[1] + f",{NOTE_NOT_RECORDED}"
    assert len(read_pauc_csv(res)) == 4


@pytest.mark.parametrize(("pauc", "note", "problem"), [
    ("", "", "line 2: empty pauc value and no pauc_note saying why it is undefined"),
    ("nan", "", "line 2: empty pauc value and no pauc_note saying why it is undefined"),
    ("0.5", "FNMR is 0", "line 2: a pauc_note beside a pauc value"),
    ("-1e-9", "", "line 2: column 'pauc' is '-1e-9': expected a number in [0, inf)"),
    ("abc", "", "line 2: column 'pauc' is not a number: 'abc'"),
])
def test_a_pauc_that_is_neither_a_number_nor_undefined_with_a_reason_is_refused(tmp_path, pauc, note, problem):
    row = dict.fromkeys(PAUC_COLUMNS, "")
    row.update(discard="0.3", fr="synthetic", method="random", dataset="synthetic", pauc=pauc, pauc_note=note,
               edc_variant="fixed-threshold", fmr="0.001", folds="all", quality_rule="min", template_rule="min",
               quality_fr="none", method_options="{}", fr_options="{}", seed="0", run_id="r")
    (tmp_path / "pauc.csv").write_text(",".join(PAUC_COLUMNS) + "\n" + ",".join(row[c] for c in PAUC_COLUMNS) + "\n")
    with pytest.raises(DataError, match=re.escape(f"pauc.csv: {problem}")):
        read_pauc_csv(tmp_path)


def _curves() -> list[edc.Edc]:
    rng = np.random.default_rng(7)
    m_sim, n_sim = rng.normal(0.6, 0.2, 300), rng.normal(0.0, 0.2, 40)
    m_q, n_q = rng.random(300), np.sort(rng.random(40)) * 0.01  # non-mated all lowest: recomputed FNMR goes nan
    return [edc.compute_edc("fixed-threshold", m_sim, m_q, n_sim, None),
            edc.compute_edc("fixed-threshold", m_sim + 5, m_q, n_sim, None),  # no false non-match
            edc.compute_edc("recomputed-threshold", m_sim, m_q, n_sim, n_q),
            edc.compute_edc("recomputed-threshold", m_sim, rng.random(300), n_sim, rng.random(40))]


@pytest.mark.parametrize("index", range(4))
def test_the_undefined_reason_is_given_exactly_where_pauc_is_nan(index):
    curve = _curves()[index]
    reason = edc.pauc_undefined_reason(curve)
    for limit in (0.05, 0.2, 0.3, 1.0):
        assert bool(reason) == bool(np.isnan(edc.pauc(curve, limit))), (index, limit, reason)
    assert bool(reason) == (index in (1, 2))
