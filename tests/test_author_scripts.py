"""Issue 24 item 7: the author scripts' AUC (CR-FIQA's ``ERC/erc.py``) in run records and reports.

:func:`erc_auc` transcribes ``getFNMRFixedTH`` of fdbtrs/CR-FIQA ``ERC/erc.py`` (with
``get_eer_threshold`` of ``ERC/roc.py`` and the ``sklearn.metrics.auc`` of ``save_pdf``) step by
step, with two parts switchable, so the tests pin which of the script's conventions fiqa-bench
follows and which not (both stated in ``bench/stats/edc.py``):

* followed: mated and non-mated pairs pooled and ordered by pair quality (min of the two images'),
  ascending; the first ``int(u * N)`` dropped for ``u`` in ``np.arange(0, 0.98, 0.05)``; the
  threshold recomputed on the non-mated pairs left, the FNMR taken on the mated pairs left; the
  trapezoid area over that grid, unnormalised.
* not followed: the threshold rule (the script takes the ROC point whose FMR is nearest the
  target among all scores left and counts a mated score equal to it as a non-match; fiqa-bench
  takes ``np.quantile(non-mated left, 1 - FMR)`` and counts a tie as a match), and the order of
  tied pair qualities (the script's ``argsort`` is unstable; fiqa-bench's stable, mated first).
"""

from __future__ import annotations

import json
import math
import operator
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from bench.cli import main
from bench.core import registry
from bench.core.score_store import read_scores
from bench.pipeline.runner import RunConfig, load_dataset, run
from bench.report import build_report
from bench.stats.edc import RECOMPUTED_GRID, edc_recomputed, trapezoid_auc

GRID = np.arange(0, 0.98, 0.05)  # erc.py's unconsidered_rates
FMR = 1e-3


def _roc_threshold(pos_dists: np.ndarray, neg_dists: np.ndarray, fmr: float) -> float:
    """``roc.get_eer_threshold(pos, neg, ds_scores=True)`` at one FMR: ``calculate_roc`` on the
    negated distances, then ``get_fmr_op``'s nearest FMR (first on ties), back to a distance."""
    gscores, iscores = pos_dists * -1, neg_dists * -1
    stacked = list(zip(gscores, [1] * len(gscores))) + list(zip(iscores, [0] * len(iscores)))
    scores = np.array(sorted(stacked, key=operator.itemgetter(0)))
    cumul = np.cumsum(scores[:, 1])
    thresholds, u_indices = np.unique(scores[:, 0], return_index=True)
    fnm = cumul[u_indices] - scores[u_indices][:, 1]
    fm = len(iscores) - (u_indices - fnm)
    index = np.argmin(abs(fm / len(iscores) - fmr))
    return float((thresholds * -1)[index])


def erc_auc(sim: np.ndarray, mated: np.ndarray, quality: np.ndarray, fmr: float, *,
            threshold: str = "erc", order: str = "erc") -> float:
    """The script's AUC of one method at one FMR. ``threshold="fiqa-bench"`` swaps its threshold
    rule for fiqa-bench's; ``order="fiqa-bench"`` its unstable argsort for a stable one."""
    qlts_sorted_idx = np.argsort(quality) if order == "erc" else np.argsort(quality, kind="stable")
    num_pairs = len(mated)
    fnmrs = []
    for u_rate in GRID:
        hq_pairs_idx = qlts_sorted_idx[int(u_rate * num_pairs):]
        s, m = sim[hq_pairs_idx], mated[hq_pairs_idx]
        if threshold == "erc":
            dist = np.arccos(np.clip(s, -1.0, 1.0)) / math.pi
            pos_dists, neg_dists = np.sort(dist[m]), np.sort(dist[~m])
            th = _roc_threshold(pos_dists, neg_dists, fmr)
            g_true = [g for g in pos_dists if g < th]
            fnmrs.append(1 - len(g_true) / len(pos_dists))
        else:
            th = np.quantile(s[~m], 1 - fmr)
            fnmrs.append(np.count_nonzero(s[m] < th) / np.count_nonzero(m))
    rates = 100 * GRID
    return float(np.trapezoid(np.array(fnmrs), rates / 100))  # sklearn.metrics.auc: the trapezoid rule


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """random (fixed- and recomputed-threshold runs) and oracle on the synthetic cell, and its
    comparisons computed here, pooled mated first (the protocol's order)."""
    root = tmp_path_factory.mktemp("author")
    results = root / "res"
    records = {}
    for method, variant in (("random", "fixed-threshold"), ("random", "recomputed-threshold"),
                            ("oracle", "fixed-threshold")):
        records[(method, variant)] = run(RunConfig(method=method, fr="synthetic", dataset="synthetic", results=results,
                                                   cache=root / "cache", edc_variant=variant, bootstrap=0,
                                                   progress=False))
    ds = load_dataset("synthetic", None)
    emb = registry.create("fr", "synthetic").embed(np.stack([ds.read_image(i) for i in range(len(ds))]))
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    p = ds.protocol
    assert p.mated[: p.n_mated].all()  # mated first: the pooled order fiqa-bench ties by
    quality = {}
    for method in ("random", "oracle"):
        ids, scores, meta = read_scores(results / records[(method, "fixed-threshold")]["score_file"])
        assert ids == ds.image_ids and meta["higher_is_better"] in ("True", "true")
        quality[method] = np.minimum(scores[p.a], scores[p.b]).astype(np.float64)
    return {"results": results, "records": records, "sim": np.sum(e[p.a] * e[p.b], axis=1).astype(np.float64),
            "mated": p.mated, "quality": quality}


def test_author_scripts_auc_is_the_erc_steps_with_fiqa_benchs_threshold(cell: dict) -> None:
    # The engine's grid and drop counts are the script's floats and integers.
    assert np.array_equal(RECOMPUTED_GRID, GRID)
    for n in (800, 6000, 15_658_489):
        assert [int(u * n) for u in RECOMPUTED_GRID] == [int(u * n) for u in GRID]
    for (method, variant), record in cell["records"].items():
        want = erc_auc(cell["sim"], cell["mated"], cell["quality"][method], FMR, threshold="fiqa-bench",
                       order="fiqa-bench")
        assert record["author_scripts_auc"] == pytest.approx(want, rel=1e-12, abs=1e-15), (method, variant)
    # Computed whatever the run's EDC variant: the recomputed-threshold run's own curve gives the same area.
    fixed = cell["records"][("random", "fixed-threshold")]
    recomputed = cell["records"][("random", "recomputed-threshold")]
    assert fixed["author_scripts_auc"] == recomputed["author_scripts_auc"]
    curve = pq.read_table(cell["results"] / "curves" / f"{recomputed['run_id']}.parquet").to_pandas()
    assert np.array_equal(curve["discard_fraction"], RECOMPUTED_GRID)
    assert recomputed["author_scripts_auc"] == pytest.approx(np.trapezoid(curve["fnmr"], curve["discard_fraction"]),
                                                             rel=1e-12)


def test_the_threshold_rule_is_the_one_other_difference_from_the_script(cell: dict) -> None:
    sim, mated = cell["sim"], cell["mated"]
    n_mated = int(mated.sum())

    def ours(quality: np.ndarray) -> float:
        return trapezoid_auc(edc_recomputed(sim[:n_mated], quality[:n_mated], sim[n_mated:], quality[n_mated:], FMR))

    # Without tied pair qualities the script's unstable order is immaterial: with fiqa-bench's
    # threshold rule the script's steps give fiqa-bench's AUC (same pairs dropped, same grid, same area).
    distinct = np.random.default_rng(24).permutation(len(sim)).astype(np.float64)
    assert erc_auc(sim, mated, distinct, FMR, threshold="fiqa-bench") == pytest.approx(ours(distinct), rel=1e-12)
    # The script's own threshold differs: with fewer than 500 non-mated pairs left (here at every step) its
    # nearest ROC point to FMR 1e-3 is FMR 0, above every impostor score, where fiqa-bench's quantile leaves
    # one impostor above; so its FNMR is never lower, and higher wherever a mated score lies between the two.
    assert erc_auc(sim, mated, distinct, FMR) > ours(distinct)
    for method in ("random", "oracle"):
        recorded = cell["records"][(method, "fixed-threshold")]["author_scripts_auc"]
        assert erc_auc(sim, mated, cell["quality"][method], FMR) > recorded, method


def _rows(md: str) -> dict[str, str]:
    """Row label -> value cell of the first table's block in report.md (one dataset: one column)."""
    table = md.split("**synthetic — author scripts' AUC @ FMR = 1e-3", 1)[1]
    return {cells[0]: cells[1] for cells in ([c.strip() for c in line.strip("|").split("|")]
                                            for line in table.split("\n\n", 2)[1].splitlines()[2:])}


def test_report_metric_author_scripts_reads_the_records_and_says_rerun_for_old_ones(cell: dict,
                                                                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["report", "--source", str(cell["results"]), "--out", str(out), "--table", "pauc",
                 "--metric", "author-scripts"]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "### Author scripts' AUC over discard 0-0.95, FMR = 1e-3" in md and "not normalised" in md
    assert (out / "report.tex").read_text(encoding="utf-8").isascii()
    rows = _rows(md)
    for method, label in (("random", "random"), ("oracle", "oracle")):
        auc = cell["records"][(method, "fixed-threshold")]["author_scripts_auc"]
        assert rows[label].strip("*") == f"{auc:.3f}"
    assert "pub." not in md
    # A run recorded before the field existed: n/a with the reason, never a number.
    old = tmp_path / "old"
    shutil.copytree(cell["results"], old)
    path = old / "runs" / f"{cell['records'][('oracle', 'fixed-threshold')]['run_id']}.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    del record["author_scripts_auc"]
    path.write_text(json.dumps(record), encoding="utf-8")
    build_report(old, "old", 0.3, tmp_path / "out-old", tables=["pauc"], metric="author-scripts")
    md = (tmp_path / "out-old" / "report.md").read_text(encoding="utf-8")
    assert _rows(md)["oracle"] == "n/a [1]"
    assert "[1] n/a: no author scripts' AUC in this run's record" in md and "rerun the cell to get it" in md
