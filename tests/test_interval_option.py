"""Issue 24 item 4: BCa intervals as a named option of ``bench run`` (``--interval bca``), stored
in the run record and named as such by the report; percentile stays the default.

The expected BCa bounds are computed here from the stored replicates and an independent
leave-one-subject-out pass over the comparisons (numpy on the materialised data, not the
engine's count-weighted replicate code), then Efron's formulas written out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from bench.core import registry
from bench.core.errors import BenchError
from bench.core.score_store import read_score_table
from bench.pipeline.runner import RunConfig, load_dataset, run
from bench.report import build_report
from bench.stats import bootstrap

REPS = 200


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("interval")
    out = {}
    for interval in ("percentile", "bca"):
        cfg = RunConfig(method="random", fr="synthetic", dataset="synthetic", results=root / interval,
                        cache=root / "cache", bootstrap=REPS, interval=interval, progress=False, fmr=1e-2)
        out[interval] = (cfg, run(cfg))
    return out


def test_default_is_percentile_and_bca_is_recorded(runs: dict) -> None:
    for interval, (cfg, record) in runs.items():
        assert record["bootstrap"]["method"] == interval
        path = Path(cfg.results) / "runs" / f"{record['run_id']}.json"
        assert json.loads(path.read_text(encoding="utf-8"))["bootstrap"]["method"] == interval
    assert RunConfig(method="random", fr="synthetic", dataset="synthetic").interval == "percentile"


def test_bca_bounds_follow_efron_from_the_stored_replicates(runs: dict) -> None:
    cfg, record = runs["bca"]
    results = Path(cfg.results)
    stored = bootstrap.load(results / "runs" / record["bootstrap"]["file"])
    ds = load_dataset("synthetic", None)
    emb = registry.create("fr", "synthetic").embed(np.stack([ds.read_image(i) for i in range(len(ds))]))
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    p = ds.protocol
    sim = np.sum(e[p.a] * e[p.b], axis=1).astype(np.float64)
    scores = read_score_table(results / record["score_file"])
    by_id = dict(zip(scores.ids, scores.scores, strict=True))
    quality = np.array([by_id[i] for i in ds.image_ids], dtype=np.float64)
    q = np.minimum(quality[p.a], quality[p.b])
    units = bootstrap.units_from_dataset(ds, p)
    m, n = p.mated, ~p.mated
    # The leave-one-subject-out values (the jackknife is checked against the materialised data
    # in tests/test_bootstrap.py); the interval is then Efron's formulas, written out here.
    jack = bootstrap.jackknife_paucs(sim[m], q[m], sim[n], units, stored.discard_limits, cfg.fmr)
    for j, limit in enumerate(stored.discard_limits):
        point = record["pauc"][repr(float(limit))]
        reps = stored.replicates[np.isfinite(stored.replicates[:, j]), j]
        z0 = norm.ppf((np.sum(reps < point) + 0.5 * np.sum(reps == point)) / reps.size)
        d = jack[:, j].mean() - jack[:, j]
        a = np.sum(d ** 3) / (6 * np.sum(d ** 2) ** 1.5)
        z = norm.ppf([0.025, 0.975])
        want = np.quantile(reps, norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))
        got = record["bootstrap"]["interval"][repr(float(limit))]
        assert got == pytest.approx(want, abs=1e-12), limit
        # Not the percentile interval of the same replicates: the option changes what is stored.
        assert not np.allclose(got, np.quantile(reps, [0.025, 0.975]), atol=1e-9), limit


def test_bca_on_the_recomputed_threshold_edc_is_refused_before_any_work() -> None:
    with pytest.raises(BenchError, match="--interval bca needs the fixed-threshold EDC"):
        RunConfig(method="random", fr="synthetic", dataset="synthetic", interval="bca",
                  edc_variant="recomputed-threshold")
    with pytest.raises(BenchError, match="interval 'studentized'"):
        RunConfig(method="random", fr="synthetic", dataset="synthetic", interval="studentized")


def test_cli_offers_the_interval_and_refuses_others(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--method", "random", "--fr", "synthetic",
                           "--dataset", "synthetic", "--interval", "wald", "--results", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "invalid choice: 'wald'" in proc.stderr


def test_report_names_bca_intervals_as_such(runs: dict, tmp_path: Path) -> None:
    texts = {}
    for interval, (cfg, _) in runs.items():
        written = build_report(results=Path(cfg.results), source=str(cfg.results), discard=0.3,
                               out=tmp_path / interval, tables=["pauc"], images=False)
        texts[interval] = next(p for p in written if p.name == "report.md").read_text(encoding="utf-8")
    assert "BCa [" in texts["bca"] and "Efron's BCa" in texts["bca"]
    assert "BCa [" not in texts["percentile"] and "percentile bootstrap interval" in texts["percentile"]
