"""Reference sets: `bench reference freeze/verify` and `bench check --against` (synthetic runs, seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.core.errors import DataError
from bench.pipeline.runner import RunConfig, run
from bench.results.reference import read_tolerances, verify, write_manifest


@pytest.fixture(scope="module")
def frozen(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("ref")
    for method, folds in (("random", None), ("oracle", None), ("random", [1])):
        run(RunConfig(method=method, fr="synthetic", dataset="synthetic", results=base / "res", cache=base / "cache",
                      progress=False, bootstrap=0, folds=folds))
    assert main(["reference", "freeze", str(base / "ref"), "--results", str(base / "res"),
                 "--tol-method", "oracle=0.001:float kernels"]) == 0
    return base / "res", base / "ref"


def _nudge(ref: Path, out: Path, method: str, by: float) -> Path:
    shutil.copytree(ref, out)
    frame = pd.read_csv(out / "pauc.csv", dtype=str, keep_default_na=False)
    row = frame.index[(frame["method"] == method) & (frame["folds"] == "all") & (frame["discard"] == "0.3")][0]
    frame.loc[row, "pauc"] = repr(float(frame.loc[row, "pauc"]) + by)
    frame.to_csv(out / "pauc.csv", index=False)
    write_manifest(out)  # another reference set, not a tampered one
    return out


def test_freeze_then_check_passes_and_lists_every_cell(frozen, capsys) -> None:
    res, ref = frozen
    assert verify(ref) > 3
    tol = read_tolerances(ref)
    assert len(tol) == 6 and set(tol.loc[tol["method"] == "oracle", "tol"]) == {0.001}
    assert set(tol.loc[tol["method"] == "random", "tol"]) == {0.0}
    capsys.readouterr()
    assert main(["check", "--results", str(res), "--against", str(ref)]) == 0
    out = capsys.readouterr().out
    assert out.count("| ok |") == 6 and "DRIFT" not in out


def test_freeze_keeps_each_runs_evf_points_and_score_file(frozen) -> None:
    """A set carries what re-deriving its tolerances or drawing its EVF figure needs."""
    import json

    _, ref = frozen
    for record in (ref / "runs").glob("*.json"):
        run_id = record.stem
        assert (ref / "curves" / f"{run_id}.evf.parquet").is_file()
        assert (ref / json.loads(record.read_text())["score_file"]).is_file()


def test_a_reference_value_nudged_by_001_fails_naming_the_cell(frozen, tmp_path, capsys) -> None:
    res, ref = frozen
    nudged = _nudge(ref, tmp_path / "nudged", "random", 0.01)
    capsys.readouterr()
    assert main(["check", "--results", str(res), "--against", str(nudged)]) == 1
    drift = [line for line in capsys.readouterr().out.splitlines() if "DRIFT (" in line]
    assert len(drift) == 1 and "| random |" in drift[0] and "| all |" in drift[0]


def test_a_tolerance_covers_a_nudge_within_it(frozen, tmp_path) -> None:
    res, ref = frozen
    assert main(["check", "--results", str(res), "--against", str(_nudge(ref, tmp_path / "a", "oracle", 0.0009))]) == 0
    assert main(["check", "--results", str(res), "--against", str(_nudge(ref, tmp_path / "b", "oracle", 0.002))]) == 1


def test_missing_cells_fail_only_with_strict_and_counts_must_agree(frozen, tmp_path) -> None:
    res, ref = frozen
    part = tmp_path / "part"
    shutil.copytree(res, part)
    frame = pd.read_csv(part / "pauc.csv", dtype=str, keep_default_na=False)
    frame[frame["method"] == "random"].to_csv(part / "pauc.csv", index=False)
    assert main(["check", "--results", str(part), "--against", str(ref)]) == 0
    assert main(["check", "--results", str(part), "--against", str(ref), "--strict"]) == 1
    counts = tmp_path / "counts"
    shutil.copytree(ref, counts)
    frame = pd.read_csv(counts / "pauc.csv", dtype=str, keep_default_na=False)
    frame.loc[0, "n_mated"] = str(int(frame.loc[0, "n_mated"]) + 1)
    frame.to_csv(counts / "pauc.csv", index=False)
    write_manifest(counts)
    assert main(["check", "--results", str(res), "--against", str(counts)]) == 1


def test_verify_and_tolerances_errors_name_the_file(frozen, tmp_path) -> None:
    _, ref = frozen
    copy = tmp_path / "copy"
    shutil.copytree(ref, copy)
    (copy / "pauc.csv").write_text((copy / "pauc.csv").read_text() + "\n")
    with pytest.raises(DataError, match="pauc.csv: content differs"):
        verify(copy)
    (copy / "tolerances.csv").write_text("discard,tol\n0.3,x\n")
    with pytest.raises(DataError, match="tolerances.csv: missing column"):
        read_tolerances(copy)
    assert main(["reference", "freeze", str(ref), "--results", str(tmp_path)]) == 2  # not empty, no --force


def test_report_renders_a_reference_set(frozen, tmp_path) -> None:
    from bench.report import build_report

    _, ref = frozen
    written = build_report(results=ref, source=str(ref), discard=0.3, out=tmp_path / "rep", tables=None, data_root=None)
    assert any(p.name == "report.html" for p in written)


COMMITTED = sorted((Path(__file__).resolve().parent.parent / "results" / "reference").glob("*/MANIFEST.sha256"))


@pytest.mark.parametrize("ref", [m.parent for m in COMMITTED], ids=[m.parent.name for m in COMMITTED])
def test_the_committed_reference_sets_are_intact_and_every_cell_has_a_tolerance_below_a_nudge(ref: Path) -> None:
    from bench.results.reference import check_against

    assert {m.parent.name for m in COMMITTED} >= {"dlib-lfw-cfpfp-v2", "sface-lfw-cfpfp-v1"}
    assert verify(ref) > 20
    tol = read_tolerances(ref)
    assert (tol["tol"] < 0.01).all() and (tol["why"].str.len() > 10).all()
    table = check_against(ref, ref)  # every cell finds its own tolerance and agrees with itself
    assert (table["status"] == "ok").all() and len(table) == len(tol)


def _as_onnx(folder: Path, out: Path, path: str, digest: str) -> Path:
    """A copy of ``folder`` whose FR model is ``onnx:path`` with weights sha256 ``digest``."""
    import json

    shutil.copytree(folder, out)
    for name in ("pauc.csv", "tolerances.csv"):
        if (out / name).is_file():
            frame = pd.read_csv(out / name, dtype=str, keep_default_na=False)
            for col in ("fr", "quality_fr"):
                frame[col] = frame[col].replace("synthetic", f"onnx:{path}")
            frame.to_csv(out / name, index=False)
    for run in (out / "runs").glob("*.json"):
        record = json.loads(run.read_text())
        record["fr"] = f"onnx:{path}"
        record["fr_provenance"] = {**record.get("fr_provenance", {}), "fr_weights_sha256": digest}
        run.write_text(json.dumps(record))
    if (out / "MANIFEST.sha256").is_file():
        write_manifest(out)
    return out


def test_an_onnx_model_is_matched_by_its_hash_not_its_path(frozen, tmp_path) -> None:
    from bench.results.reference import check_against

    res, ref = frozen
    theirs = _as_onnx(ref, tmp_path / "ref", "/their/machine/mfn.onnx", "a" * 64)
    same = check_against(_as_onnx(res, tmp_path / "same", "/my/disk/mfn.onnx", "a" * 64), theirs)
    assert list(same["status"]) == ["ok"] * 6
    other = check_against(_as_onnx(res, tmp_path / "other", "/their/machine/mfn.onnx", "b" * 64), theirs)
    assert sorted(set(other["status"])) == ["not in reference", "not reproduced"]


def test_derived_tolerances_are_written_into_the_matching_rows_by_portable_key(frozen, tmp_path) -> None:
    """benchmarks/derive_tolerances.py --update: rows found by identity (ONNX models by hash,
    whatever path made them), only those rows change, the manifest follows, unknown keys refuse."""
    from bench.results.reference import portable_keys, update_tolerances
    from bench.results.table import latest_per_identity, read_pauc_csv

    res, ref = frozen
    theirs = _as_onnx(ref, tmp_path / "ref", "/their/machine/mfn.onnx", "a" * 64)
    mine = _as_onnx(res, tmp_path / "mine", "/my/disk/mfn.onnx", "a" * 64)
    rows = latest_per_identity(read_pauc_csv(mine))
    keys = portable_keys(mine, rows)
    pick = (rows["method"] == "oracle").to_numpy()
    before = read_tolerances(theirs)
    derived = pd.DataFrame({"key": keys[pick], "tol": 3e-6, "why": "derived: test"})
    assert update_tolerances(theirs, derived) == int(pick.sum()) == 2
    after = read_tolerances(theirs)
    oracle = (after["method"] == "oracle").to_numpy()
    assert (after.loc[oracle, "tol"] == 3e-6).all() and (after.loc[oracle, "why"] == "derived: test").all()
    assert after.loc[~oracle].equals(before.loc[~oracle])
    assert verify(theirs) > 3  # the manifest was rewritten
    other = _as_onnx(res, tmp_path / "other", "/my/disk/mfn.onnx", "b" * 64)  # another model: no such cell
    unknown = pd.DataFrame({"key": portable_keys(other, latest_per_identity(read_pauc_csv(other))), "tol": 1.0,
                            "why": "x"})
    with pytest.raises(DataError, match="tolerances.csv: no row for the cell"):
        update_tolerances(theirs, unknown)
    assert read_tolerances(theirs).equals(after)
