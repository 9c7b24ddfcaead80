"""Issue 24 items 4 and 7: a run records how many non-mated scores its FMR threshold rests on and
its error-versus-FMR (EVF) points; reports say when an FMR target is nominal and draw the EVF.

One LFW-sized cell (the synthetic dataset with 300 identities: 3,000 mated and 3,000 non-mated
comparisons in two folds) is run at FMR 1e-3, where the threshold rests on 3 impostor scores
(nominal), and at FMR 1e-2, where it rests on 30 (dense). Every expected number is computed here
from the images, not through the runner.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from bench.core import registry
from bench.datasets.synthetic import SyntheticDataset
from bench.pipeline.runner import EVF_DISCARDS, EVF_FMRS, RunConfig, load_dataset, run
from bench.report import build_report

N_IDS = 300  # x 10 mated pairs each = 3,000 mated; as many non-mated: LFW View 2's size
DENSE_FMR = 1e-2


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The runs (random and oracle at FMR 1e-3 and 1e-2) and the comparisons computed independently."""
    root = tmp_path_factory.mktemp("lfw-sized")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SyntheticDataset, "n_ids", N_IDS)
        records = {(method, fmr): run(RunConfig(method=method, fr="synthetic", dataset="synthetic",
                                                results=root / "res", cache=root / "cache", fmr=fmr, bootstrap=0,
                                                progress=False))
                   for fmr in (1e-3, DENSE_FMR) for method in ("random", "oracle")}
        ds = load_dataset("synthetic", None)
    emb = registry.create("fr", "synthetic").embed(np.stack([ds.read_image(i) for i in range(len(ds))]))
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    p = ds.protocol
    sim = np.sum(e[p.a] * e[p.b], axis=1).astype(np.float64)
    return {"results": root / "res", "records": records, "mated": sim[p.mated], "nonmated": sim[~p.mated],
            "fold": p.fold[~p.mated]}


def _support(nonmated: np.ndarray, fold: np.ndarray, fmr: float) -> dict:
    """The expected ``fmr_support``, counted directly: scores at or above np.quantile's threshold."""
    threshold = np.quantile(nonmated, 1 - fmr)
    hits = int(np.sum(nonmated >= threshold))
    per_fold = [np.mean(nonmated[fold == f] >= threshold) for f in np.unique(fold)]
    return {"fmr": fmr, "n_nonmated": nonmated.size, "n_false_matches": hits, "realised_fmr": hits / nonmated.size,
            "nominal": hits < 10, "fold_realised_fmr": [min(per_fold), max(per_fold)]}


def test_record_holds_the_fmr_support_counted_independently(cell: dict) -> None:
    assert cell["nonmated"].size == 3000 and np.unique(cell["fold"]).tolist() == [1, 2]
    for (method, fmr), record in cell["records"].items():
        want = _support(cell["nonmated"], cell["fold"], fmr)
        got = record["fmr_support"]
        assert got.keys() == want.keys(), method
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-12), (method, fmr, key)
        # The record on disk says the same (it is what reports read).
        path = cell["results"] / "runs" / f"{record['run_id']}.json"
        assert json.loads(path.read_text(encoding="utf-8"))["fmr_support"] == got
    # LFW-sized at FMR 1e-3: the threshold sits between the 4th and 3rd highest impostor score.
    assert cell["records"][("random", 1e-3)]["fmr_support"]["n_false_matches"] == 3
    assert cell["records"][("random", 1e-3)]["fmr_support"]["nominal"] is True
    assert cell["records"][("random", DENSE_FMR)]["fmr_support"]["n_false_matches"] == 30
    assert cell["records"][("random", DENSE_FMR)]["fmr_support"]["nominal"] is False


def test_evf_file_at_discard_zero_is_the_fr_models_fnmr_at_each_fmr(cell: dict) -> None:
    for (method, fmr), record in cell["records"].items():
        path = cell["results"] / "curves" / f"{record['run_id']}.evf.parquet"
        table = pq.read_table(path)
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        assert (meta["run_id"], meta["method"], meta["dataset"]) == (record["run_id"], method, "synthetic")
        frame = table.to_pandas()
        assert sorted(set(frame["discard"])) == list(EVF_DISCARDS) and len(frame) == len(EVF_DISCARDS) * len(EVF_FMRS)
        plain = frame[frame["discard"] == 0.0].sort_values("fmr")
        assert plain["fmr"].tolist() == sorted(EVF_FMRS)
        for target, fnmr, hits in zip(plain["fmr"], plain["fnmr"], plain["n_false_matches"], strict=True):
            threshold = np.quantile(cell["nonmated"], 1 - target)
            assert fnmr == pytest.approx(np.mean(cell["mated"] < threshold), abs=1e-12), (method, target)
            assert hits == np.sum(cell["nonmated"] >= threshold), (method, target)
        # Discarding by quality never changes the thresholds: they are fixed on all non-mated scores.
        by_discard = frame.groupby("discard")["threshold"].apply(list)
        assert all(t == by_discard[0.0] for t in by_discard)


def _printed(rate: float) -> str:
    """A rate as the caption prints it: 0, else two significant digits (``6.7e-4``)."""
    if rate == 0:
        return "0"
    mantissa, exponent = f"{rate:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _caption(md: str, title: str) -> str:
    """The caption line of the table section called ``title`` in report.md."""
    section = md.split(f"## {title}\n", 1)[1]
    return next(line for line in section.splitlines()[1:] if line and not line.startswith("#"))


def test_report_says_nominal_for_the_lfw_sized_cell_and_not_for_the_dense_one(cell: dict, tmp_path: Path) -> None:
    build_report(cell["results"], "r", 0.3, tmp_path / "out", tables=["pauc"])
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    nominal = _caption(md, "pAUC — the paper's evaluation settings")
    support = cell["records"][("random", 1e-3)]["fmr_support"]
    low, high = support["fold_realised_fmr"]
    assert "FMR 1e-3 is nominal here" in nominal
    assert f"synthetic × Synthetic rests on 3 of 3,000 (realised FMR 1.0e-3; {_printed(low)}–{_printed(high)} " \
           "across folds)" in nominal
    dense = _caption(md, "pAUC — FMR 0.01")
    assert "nominal" not in dense and "FMR = 0.01" in dense


def test_evf_figure_beside_the_edc_and_a_note_when_the_files_are_absent(cell: dict, tmp_path: Path) -> None:
    written = build_report(cell["results"], "r", 0.3, tmp_path / "out", tables=["edc"])
    names = {p.name for p in written}
    assert {"edc_grid.png", "evf_grid.png", "evf_grid_fmr_0_01.png"} <= names
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "## EVF curves — the paper's evaluation settings" in md and "Open markers: nominal FMR targets" in md
    # Runs made before bench run wrote EVF files: no figure, one line saying so.
    old = tmp_path / "old"
    shutil.copytree(cell["results"], old)
    for path in (old / "curves").glob("*.evf.parquet"):
        path.unlink()
    written = build_report(old, "r", 0.3, tmp_path / "out-old", tables=["edc"])
    assert not any(p.name.startswith("evf_grid") for p in written)
    md = (tmp_path / "out-old" / "report.md").read_text(encoding="utf-8")
    assert "**EVF curves:** _No EVF file" in md and "rerun them" in md
