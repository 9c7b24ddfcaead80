"""Reference sets lose nothing and vouch for themselves (issue 22, items 1 and 7).

`bench reference freeze` never deletes its input, never sweeps an unrelated folder into a
manifest, and replaces a set only once the new one is complete; `bench check --against`
verifies the reference's MANIFEST.sha256 and says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.cli import main
from bench.pipeline.runner import RunConfig, run
from bench.results.reference import MANIFEST, verify

REFERENCE_SETS = sorted(p for p in (Path(__file__).resolve().parent.parent / "results" / "reference").iterdir()
                        if p.is_dir())


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("safety")
    for method in ("random", "oracle"):
        run(RunConfig(method=method, fr="synthetic", dataset="synthetic", results=base / "res", cache=base / "cache",
                      progress=False, bootstrap=0))
    return base / "res"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _freeze(out: Path, results: Path, *extra: str) -> int:
    return main(["reference", "freeze", str(out), "--results", str(results), *extra])


def test_freezing_into_or_around_its_own_results_folder_is_refused_and_loses_nothing(results, tmp_path, capsys):
    res = tmp_path / "res"
    shutil.copytree(results, res)
    before = _snapshot(res)
    for target, where in ((res, "is"), (res / "ref", "is inside"), (tmp_path, "contains")):
        assert _freeze(target, res, "--force") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{target}: {where} the results folder {res}" in err[0], err
        assert _snapshot(res) == before, f"freezing into {target} changed the results folder"
    assert not (res / "ref").exists()


def test_force_into_a_folder_that_is_no_reference_set_sweeps_nothing(results, tmp_path, capsys):
    other = tmp_path / "papers"
    (other / "drafts").mkdir(parents=True)
    (other / "notes.txt").write_text("mine")
    (other / "drafts" / "a.tex").write_text("mine too")
    before = _snapshot(other)
    assert _freeze(other, results, "--force") == 2
    assert "not a reference set (no MANIFEST.sha256)" in capsys.readouterr().err
    assert _snapshot(other) == before and not (other / MANIFEST).exists()
    # A folder holding only a README written for the set is what freeze expects, with or without --force.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "README.md").write_text("# set\n")
    assert _freeze(fresh, results) == 0 and verify(fresh) > 3
    assert (fresh / "README.md").read_text() == "# set\n"


def test_force_replaces_a_set_with_its_hand_written_files_and_only_once_the_new_one_is_complete(results, tmp_path):
    ref = tmp_path / "ref"
    assert _freeze(ref, results) == 0
    (ref / "README.md").write_text("# our set\n")
    (ref / "reproduce.sh").write_text("bench run ...\n")
    assert _freeze(ref, results, "--force") == 0
    assert verify(ref) == len(_snapshot(ref)) - 1  # every file but the manifest itself is listed
    assert (ref / "reproduce.sh").read_text() == "bench run ...\n" and (ref / "README.md").is_file()
    before = _snapshot(ref)
    # A freeze that fails half-way (a run's curve is missing) leaves the old set exactly as it was.
    broken = tmp_path / "broken"
    shutil.copytree(results, broken)
    next(p for p in (broken / "curves").glob("*.parquet") if not p.name.endswith(".evf.parquet")).unlink()
    assert _freeze(ref, broken, "--force") == 2
    assert _snapshot(ref) == before and verify(ref) > 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "ref"], "a temporary folder was left behind"


def test_check_against_verifies_the_reference_manifest_and_says_so(results, tmp_path, capsys):
    ref = tmp_path / "ref"
    assert _freeze(ref, results) == 0
    capsys.readouterr()
    assert main(["check", "--results", str(results), "--against", str(ref)]) == 0
    out = capsys.readouterr().out
    assert f"{ref}: {len(_snapshot(ref)) - 1} files match {MANIFEST}" in out
    # Tampered: a curve replaced by another run's (the numbers in pauc.csv would still agree).
    curves = sorted((ref / "curves").glob("*.parquet"))
    curves[0].write_bytes(curves[1].read_bytes())
    assert main(["check", "--results", str(results), "--against", str(ref)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{curves[0]}: content differs from its sha256" in err[0]
    # An unlisted file is not part of the set either.
    assert _freeze(ref, results, "--force") == 0
    (ref / "runs" / "extra.json").write_text("{}")
    assert main(["check", "--results", str(results), "--against", str(ref)]) == 2
    assert "extra.json: not listed in" in capsys.readouterr().err
    # Missing: the check runs and says the files are not verified.
    (ref / "runs" / "extra.json").unlink()
    (ref / MANIFEST).unlink()
    assert main(["check", "--results", str(results), "--against", str(ref)]) == 0
    assert f"{ref}: no {MANIFEST}: its files are not verified" in capsys.readouterr().out


@pytest.mark.parametrize("ref", REFERENCE_SETS, ids=[p.name for p in REFERENCE_SETS])
def test_committed_reference_sets_verify_and_check_against_themselves(ref, capsys):
    assert main(["check", "--results", str(ref), "--against", str(ref)]) == 0
    out = capsys.readouterr().out
    assert f"files match {MANIFEST}" in out and "DRIFT" not in out
