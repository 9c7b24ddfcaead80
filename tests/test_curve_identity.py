"""A curve file is drawn only for the run it belongs to (issue 22, item 7).

`bench run` writes each curve's run id and cell identity into its parquet metadata; `bench
report` checks them against the pauc.csv row it draws the curve for, so a swapped or copied
file is refused naming it instead of being drawn as another method's curve.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.cli import main
from bench.pipeline.runner import RunConfig, run


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("curves")
    ids = {m: run(RunConfig(method=m, fr="synthetic", dataset="synthetic", results=base / "res", cache=base / "cache",
                            progress=False, bootstrap=0))["run_id"] for m in ("random", "oracle")}
    return base / "res", ids


def _report(res: Path, out: Path) -> int:
    return main(["report", "--source", str(res), "--out", str(out), "--discard", "0.3", "--no-images"])


def test_curves_carry_their_run_and_cell(results):
    res, ids = results
    for method, run_id in ids.items():
        meta = pq.read_schema(res / "curves" / f"{run_id}.parquet").metadata
        assert meta[b"run_id"].decode() == run_id and meta[b"method"].decode() == method
        assert meta[b"fr"] == b"synthetic" and meta[b"dataset"] == b"synthetic"


def test_a_swapped_curve_file_is_refused_naming_it(results, tmp_path, capsys):
    res, ids = results
    assert _report(res, tmp_path / "ok") == 0
    swapped = tmp_path / "swapped"
    shutil.copytree(res, swapped)
    a, b = (swapped / "curves" / f"{ids[m]}.parquet" for m in ("random", "oracle"))
    a_bytes = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(a_bytes)
    capsys.readouterr()
    assert _report(swapped, tmp_path / "bad") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "curves/" in err[0] and "the file belongs to another run" in err[0], err
    assert f"run_id '{ids['random']}'" in err[0] or f"run_id '{ids['oracle']}'" in err[0]
