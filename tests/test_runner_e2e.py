"""bench run → bench check end to end on the synthetic dataset (seconds, no real data)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.pipeline.runner import RunConfig, load_dataset, run
from bench.pipeline.similarity import compare
from bench.stats import edc


def _run(tmp_path, method, **kw):
    return run(RunConfig(method=method, fr="synthetic", dataset="synthetic", results=tmp_path / "res",
                         progress=False, **kw))


def test_run_writes_rows_curve_and_metadata(tmp_path) -> None:
    rec = _run(tmp_path, "random")
    # The record names its score file relative to the results folder: a record holds no machine path.
    assert rec["score_file"] == "scores/random/synthetic.parquet" and (tmp_path / "res" / rec["score_file"]).is_file()
    frame = pd.read_csv(tmp_path / "res" / "pauc.csv")
    from bench.results.table import PAUC_COLUMNS

    assert tuple(frame.columns) == PAUC_COLUMNS
    assert sorted(frame["discard"]) == [0.2, 0.3]
    curve = pd.read_parquet(tmp_path / "res" / "curves" / f"{rec['run_id']}.parquet")
    assert curve["discard_fraction"].iloc[0] == 0.0 and curve["fnmr"].iloc[0] == rec["fnmr_at_0"]
    meta = json.loads((tmp_path / "res" / "runs" / f"{rec['run_id']}.json").read_text())
    for key in ("git_commit", "harness_version", "device", "threshold", "n_mated", "score_provenance", "fr_provenance"):
        assert key in meta


def test_run_matches_an_independent_computation(tmp_path) -> None:
    rec = _run(tmp_path, "oracle")
    ds = load_dataset("synthetic", None)
    from bench.core import registry

    emb = registry.create("fr", "synthetic").embed(np.stack([ds.read_image(i) for i in range(len(ds))]))
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    p = ds.protocol
    sim = np.sum(e[p.a] * e[p.b], axis=1)
    nonmated = np.sort(sim[~p.mated])
    thr = np.quantile(nonmated, 1 - 1e-3)
    assert rec["threshold"] == pytest.approx(thr, abs=1e-6)
    assert rec["fnmr_at_0"] == pytest.approx(np.mean(sim[p.mated] < thr))


def test_oracle_beats_random_and_random_is_near_one(tmp_path) -> None:
    r = _run(tmp_path, "random")["pauc"]
    o = _run(tmp_path, "oracle")["pauc"]
    assert o["0.3"] < r["0.3"]
    assert 0.8 < r["0.3"] < 1.2


def test_rerun_reuses_scores_and_force_recomputes(tmp_path) -> None:
    first = _run(tmp_path, "random")
    path = first["score_file"]
    created = first["score_provenance"]["created"]
    second = _run(tmp_path, "random")
    assert second["score_provenance"]["created"] == created and second["score_file"] == path
    assert second["pauc"] == first["pauc"]
    third = _run(tmp_path, "random", force=True, seed=5)
    assert third["pauc"] != first["pauc"]


def test_fold_selection_limits_the_protocol(tmp_path) -> None:
    rec = _run(tmp_path, "random", folds=[1])
    assert rec["n_mated"] + rec["n_nonmated"] == 400


def test_recomputed_variant_is_selectable(tmp_path) -> None:
    rec = _run(tmp_path, "random", edc_variant="recomputed-threshold")
    assert rec["edc_variant"] == "recomputed-threshold"


def test_cli_run_then_check(tmp_path, capsys) -> None:
    res = tmp_path / "res"
    assert main(["run", "--method", "oracle", "--fr", "synthetic", "--dataset", "synthetic", "--results", str(res), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "pAUC@0.3=" in out
    assert main(["check", "--results", str(res)]) == 0
    assert main(["check", "--results", str(res), "--strict"]) == 1  # published cells not reproduced


def test_check_flags_drift(tmp_path, capsys) -> None:
    res = tmp_path / "res"
    res.mkdir()
    # Printed names pass through the name mapping unchanged, so rows can hit published cells.
    (res / "pauc.csv").write_text(
        "discard,fr,method,dataset,pauc\n"
        "0.3,arcface,DifFIQA,LFW,0.695\n"
        "0.3,arcface,DifFIQA,CALFW,0.950\n"
    )
    assert main(["check", "--results", str(res)]) == 1
    out = capsys.readouterr().out
    assert "match" in out and "drift" in out and "+0.0500" in out


def test_cli_errors_are_one_line(tmp_path, capsys) -> None:
    assert main(["run", "--method", "nope", "--fr", "synthetic", "--dataset", "synthetic", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown method 'nope'") and "\n" not in err
    assert main(["check", "--results", str(tmp_path / "missing")]) == 2
    assert "pauc.csv: not found (write it with `bench run`)" in capsys.readouterr().err


def test_engine_agrees_with_comparisons_of_runner(tmp_path) -> None:
    rec = _run(tmp_path, "oracle")
    ds = load_dataset("synthetic", None)
    from bench.core import registry
    from bench.core.score_store import read_scores

    emb = registry.create("fr", "synthetic").embed(np.stack([ds.read_image(i) for i in range(len(ds))]))
    ids, q, _ = read_scores(tmp_path / "res" / rec["score_file"])
    assert ids == ds.image_ids
    c = compare(ds.protocol, emb, q)
    curve = edc.edc(c.mated_similarity, c.mated_quality, edc.threshold_at_fmr(c.nonmated_similarity))
    assert edc.pauc(curve, 0.3) == pytest.approx(rec["pauc"]["0.3"])


def test_changed_seed_or_options_do_not_reuse_scores(tmp_path) -> None:
    first = _run(tmp_path, "random")
    other_seed = _run(tmp_path, "random", seed=9)
    assert other_seed["score_provenance"]["created"] >= first["score_provenance"]["created"]
    assert other_seed["pauc"] != first["pauc"]
    assert other_seed["score_provenance"]["seed"] == "9"


def test_score_file_orientation_overrides_the_card(tmp_path) -> None:
    from bench.core.score_store import read_scores, write_scores

    first = _run(tmp_path, "oracle")
    ids, scores, meta = read_scores(tmp_path / "res" / first["score_file"])
    write_scores(tmp_path / "res" / first["score_file"], ids, -scores, {**meta, "higher_is_better": "False"})
    again = _run(tmp_path, "oracle")
    assert again["pauc"] == pytest.approx(first["pauc"])


def test_missing_weights_are_recorded_as_not_run(tmp_path) -> None:
    from bench.core.errors import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="magface_epoch_00025.pth"):
        _run(tmp_path, "magface")
    entries = json.loads((tmp_path / "res" / "runs" / "not_run.json").read_text())
    assert entries[0]["method"] == "magface" and "magface_epoch_00025.pth" in entries[0]["reason"]


def test_check_writes_markdown_drift_report(tmp_path, capsys) -> None:
    res = tmp_path / "res"
    res.mkdir()
    (res / "pauc.csv").write_text("discard,fr,method,dataset,pauc\n"
                                  "0.3,arcface,DifFIQA,CALFW,0.950\n")
    out = tmp_path / "drift.md"
    assert main(["check", "--results", str(res), "--report", str(out)]) == 1
    text = out.read_text()
    assert "arcface" in text and "CALFW" in text
    assert "drift" in text and "0.900" in text
