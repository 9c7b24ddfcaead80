"""bench.api: EDC / pAUC from arrays, DataFrames or embeddings, and reports, as the CLI computes them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench import api
from bench.cli import main
from bench.core.errors import DataError
from bench.pipeline.similarity import normalise
from bench.stats import edc


def _comparisons(n: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mated = rng.random(n) < 0.5
    qa, qb = rng.random(n), rng.random(n)
    # Mated similarity grows with pair quality, so discarding low quality lowers FNMR.
    sim = np.where(mated, 0.2 + 0.6 * np.minimum(qa, qb), 0.1) + rng.normal(0, 0.1, n)
    return pd.DataFrame({"similarity": sim, "mated": mated, "quality_a": qa, "quality_b": qb})


@pytest.mark.parametrize("variant", edc.VARIANTS)
def test_evaluate_matches_the_engine(variant: str) -> None:
    df = _comparisons()
    m = df["mated"].to_numpy()
    pq = np.minimum(df["quality_a"], df["quality_b"]).to_numpy()
    sim = df["similarity"].to_numpy()
    curve = edc.compute_edc(variant, sim[m], pq[m], sim[~m], pq[~m], 1e-3)
    got = api.evaluate(sim, m, df["quality_a"], df["quality_b"], variant=variant)
    assert got.pauc == {0.2: edc.pauc(curve, 0.2), 0.3: edc.pauc(curve, 0.3)}
    assert got.pauc[0.3] < 0.9  # quality is informative here
    np.testing.assert_array_equal(got.curve.fnmr, curve.fnmr)
    assert (got.n_mated, got.n_nonmated) == (int(m.sum()), int((~m).sum()))


def test_frame_and_orientation() -> None:
    df = _comparisons()
    base = api.evaluate_frame(df)
    assert base.pauc == api.evaluate(df["similarity"], df["mated"], df["quality_a"], df["quality_b"]).pauc
    # Lower-is-better scores, said so, give the same curve.
    flipped = df.assign(quality_a=-df["quality_a"], quality_b=-df["quality_b"])
    assert api.evaluate_frame(flipped, higher_is_better=False).pauc == base.pauc
    renamed = df.rename(columns={"similarity": "score"})
    assert api.evaluate_frame(renamed, similarity="score").pauc == base.pauc
    with pytest.raises(DataError, match="lacks column"):
        api.evaluate_frame(renamed)


def test_embeddings_use_cosine_similarity() -> None:
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(60, 8))
    quality = rng.random(60)
    a, b = rng.integers(0, 60, 300), rng.integers(0, 60, 300)
    mated = rng.random(300) < 0.4
    unit = normalise(emb.astype(np.float32))
    sim = np.einsum("ij,ij->i", unit[a], unit[b])
    got = api.evaluate_embeddings(emb, quality, a, b, mated)
    want = api.evaluate(sim, mated, quality[a], quality[b])
    assert got.pauc == pytest.approx(want.pauc, abs=1e-12)
    with pytest.raises(DataError, match="pair indices"):
        api.evaluate_embeddings(emb, quality, a + 60, b, mated)


def test_bad_input_is_a_one_line_error() -> None:
    with pytest.raises(DataError, match="equal length"):
        api.evaluate([0.1, 0.2], [True], [1, 2], [1, 2])
    with pytest.raises(DataError, match="at least one mated and one non-mated"):
        api.evaluate([0.1, 0.2], [True, True], [1, 2], [1, 2])


def test_report_is_the_cli_report(tmp_path) -> None:
    results = tmp_path / "res"
    assert main(["run", "--method", "random", "--fr", "synthetic", "--dataset", "synthetic", "--no-progress",
                 "--results", str(results), "--cache", str(tmp_path / "cache")]) == 0
    written = api.render_report(results, tmp_path / "api", tables=["pauc"])
    assert tmp_path / "api" / "report.md" in written
    assert main(["report", "--source", str(results), "--out", str(tmp_path / "cli"), "--table", "pauc"]) == 0
    assert (tmp_path / "api" / "report.md").read_text() == (tmp_path / "cli" / "report.md").read_text()
    assert (tmp_path / "pub" / "report.md") in api.render_report(None, tmp_path / "pub", tables=["pauc"])
