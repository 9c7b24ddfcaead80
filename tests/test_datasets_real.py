"""Smoke test on the real LFW and CFP under ../shared/data (skipped where absent)."""

from __future__ import annotations

import pytest

from bench.core import paths, registry
from bench.datasets.dataset_stats import table1_frame

REAL = paths.REPO_ROOT.parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not (REAL / "lfw" / "pairs.txt").is_file(), reason="no real data here")


def test_lfw_real() -> None:
    ds = registry.create("dataset", "lfw").load(REAL)
    assert (ds.protocol.n_mated, ds.protocol.n_nonmated) == (3000, 3000)
    assert (ds.n_images_total, ds.n_identities_total) == (13233, 5749)
    assert sorted(set(ds.protocol.fold.tolist())) == list(range(1, 11))
    assert "lfw-deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg" in ds.image_ids


def test_cfp_fp_real() -> None:
    ds = registry.create("dataset", "cfp-fp").load(REAL)
    assert (ds.protocol.n_mated, ds.protocol.n_nonmated) == (3500, 3500)
    assert (ds.n_images_total, ds.n_identities_total) == (7000, 500)
    assert (ds.identities[ds.protocol.a] == ds.identities[ds.protocol.b]).tolist() == ds.protocol.mated.tolist()


def test_table1_real_matches_paper() -> None:
    frame = table1_frame(REAL, ["lfw", "cfp-fp"])
    assert frame["status"].tolist() == ["found", "found"]
    assert frame["differs"].tolist() == ["", ""]
