"""A number is never silently wrong: cell identity, per-image score files, imported scores,
checkpointed scoring and early failures (issue 10, findings 2, 3, 4, 6 and 7)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bench.cli import main
from bench.core.errors import BenchError, MissingWeightsError
from bench.core.score_store import read_score_table
from bench.datasets.crops import CropStore
from bench.methods.mock import RandomQuality
from bench.pipeline.runner import RunConfig, run
from bench.results import table as res_mod


def _run(tmp_path, method="random", **kw):
    return run(RunConfig(method=method, fr="synthetic", dataset="synthetic", results=tmp_path / "res", progress=False, **kw))


def test_every_setting_that_changes_a_number_is_part_of_the_row(tmp_path) -> None:
    paper = _run(tmp_path, "oracle")
    other = _run(tmp_path, "oracle", fmr=0.1, quality_rule="mean", folds=[1])
    frame = res_mod.read_pauc_csv(tmp_path / "res")
    assert list(frame.columns) == list(res_mod.PAUC_COLUMNS)
    latest = res_mod.latest_per_identity(frame)
    assert len(latest) == 4  # two cells x two discards: the second run replaced nothing
    rows = res_mod.paper_rows(frame)
    assert set(rows["run_id"]) == {paper["run_id"]}
    assert rows.set_index("discard")["pauc"].to_dict() == pytest.approx({float(k): v for k, v in paper["pauc"].items()})
    labels = set(res_mod.protocol_differences(frame))
    assert labels == {"", "FMR 0.1; folds 1; quality rule mean"}
    assert other["fmr"] == 0.1 and other["folds"] == "1" and other["quality_rule"] == "mean"
    meta = pq.read_schema(tmp_path / "res" / "curves" / f"{other['run_id']}.parquet").metadata
    assert meta[b"fmr"] == b"0.1" and meta[b"folds"] == b"1" and meta[b"quality_rule"] == b"mean"
    record = json.loads((tmp_path / "res" / "runs" / f"{other['run_id']}.json").read_text())
    for key in ("fmr", "folds", "quality_rule", "template_rule", "quality_fr", "method_options", "fr_options", "seed"):
        assert key in record


def test_a_later_run_of_the_same_identity_wins(tmp_path) -> None:
    _run(tmp_path, "random", seed=0)
    second = _run(tmp_path, "random", seed=0, force=True)
    latest = res_mod.latest_per_identity(res_mod.read_pauc_csv(tmp_path / "res"))
    assert len(latest) == 2 and set(latest["run_id"]) == {second["run_id"]}


def test_fold_runs_add_scores_and_keep_the_others(tmp_path, monkeypatch) -> None:
    from dataclasses import replace

    from bench.datasets.synthetic import SyntheticDataset

    load = SyntheticDataset.load

    def two_halves(self, root):
        # Fold 1 compares only the first 100 images, so fold 2 brings images fold 1 never scored.
        ds = load(self, root)
        p = ds.protocol
        fold = np.where((p.a < 100) & (p.b < 100), 1, 2)
        return replace(ds, protocol=replace(p, fold=fold))

    monkeypatch.setattr(SyntheticDataset, "load", two_halves)
    first = _run(tmp_path, "random", folds=[1], seed=3)
    before = read_score_table(tmp_path / "res" / first["score_file"])
    second = _run(tmp_path, "random", folds=[2], seed=3)
    after = read_score_table(tmp_path / "res" / second["score_file"])
    assert first["score_file"] == second["score_file"]
    old = dict(zip(before.ids, before.scores))
    new = dict(zip(after.ids, after.scores))
    assert set(old) <= set(new) and len(new) > len(old)
    assert all(new[i] == s for i, s in old.items())


def test_force_recomputes_only_with_the_flag(tmp_path, monkeypatch) -> None:
    calls = []
    original = RandomQuality.score_dataset

    def spy(self, indices, ctx):
        calls.append(len(indices))
        return original(self, indices, ctx)

    monkeypatch.setattr(RandomQuality, "score_dataset", spy)
    _run(tmp_path, "random")
    _run(tmp_path, "random")
    assert len(calls) == 1
    _run(tmp_path, "random", force=True)
    assert len(calls) == 2


def test_scores_of_another_setup_are_never_silently_replaced(tmp_path) -> None:
    rec = _run(tmp_path, "random")
    table = read_score_table(tmp_path / "res" / rec["score_file"])
    setup = json.loads(table.meta["setup"])
    setup["method_version"] = "0"
    from bench.core.score_store import write_scores

    write_scores(tmp_path / "res" / rec["score_file"], table.ids, table.scores, {**table.meta, "setup": json.dumps(setup, sort_keys=True)},
                 table.digests)
    with pytest.raises(BenchError, match="another setup .*method_version '0'.*--force"):
        _run(tmp_path, "random")


def _import(tmp_path, method, *extra):
    from bench.pipeline.runner import load_dataset

    ds = load_dataset("synthetic", None)
    lines = "\n".join(f"{i} {k / 10:.3f}" for k, i in enumerate(ds.image_ids))
    file = tmp_path / "scores.txt"
    file.write_text(lines + "\n")
    return main(["import-scores", str(file), "--method", method, "--dataset", "synthetic",
                 "--results", str(tmp_path / "res"), *extra])


def test_imported_scores_are_used_by_run_and_never_overwritten(tmp_path, capsys) -> None:
    assert _import(tmp_path, "pcnet") == 0
    rec = _run(tmp_path, "pcnet")
    assert "imported_from" in rec["score_provenance"]
    # A runnable method's imported scores are used as they are, not recomputed.
    assert _import(tmp_path, "random") == 0
    imported = read_score_table(tmp_path / "res" / "scores" / "random" / "synthetic.parquet")
    rec = _run(tmp_path, "random")
    assert "imported_from" in rec["score_provenance"]
    assert read_score_table(tmp_path / "res" / rec["score_file"]).scores.tolist() == imported.scores.tolist()
    # Importing again over existing scores needs --force.
    assert _import(tmp_path, "random") == 2
    assert "--force" in capsys.readouterr().err
    assert _import(tmp_path, "random", "--force") == 0


def test_import_of_an_fr_dependent_score_must_name_the_fr_model(tmp_path, capsys) -> None:
    assert _import(tmp_path, "ser-fiq") == 2
    assert "--fr" in capsys.readouterr().err
    assert _import(tmp_path, "ser-fiq", "--fr", "synthetic") == 0
    assert (tmp_path / "res" / "scores" / "ser-fiq" / "synthetic__synthetic.parquet").is_file()
    assert _import(tmp_path, "random", "--fr", "synthetic") == 2


def test_import_only_method_without_imported_scores_fails_early(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(CropStore, "ensure", lambda *a, **k: pytest.fail("aligned before the failure"))
    with pytest.raises(BenchError, match="bench import-scores --method pcnet"):
        _run(tmp_path, "pcnet")
    reasons = json.loads((tmp_path / "res" / "runs" / "not_run.json").read_text())
    assert reasons[0]["method"] == "pcnet"


def test_scoring_is_checkpointed_per_batch_and_resumes(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(RandomQuality, "checkpoint_batches", True)
    original = RandomQuality.score_dataset
    calls = []

    def flaky(self, indices, ctx):
        calls.append(len(indices))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, indices, ctx)

    monkeypatch.setattr(RandomQuality, "score_dataset", flaky)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "random", batch_size=16)
    parts = list((tmp_path / "res" / "scores" / "random").glob(".synthetic.parts-*/part-*.npz"))
    assert len(parts) == 2
    monkeypatch.setattr(RandomQuality, "score_dataset", original)
    resumed_calls = []

    def counting(self, indices, ctx):
        resumed_calls.append(len(indices))
        return original(self, indices, ctx)

    monkeypatch.setattr(RandomQuality, "score_dataset", counting)
    rec = _run(tmp_path, "random", batch_size=16)
    total = len(read_score_table(tmp_path / "res" / rec["score_file"]).ids)
    assert sum(resumed_calls) == total - 32  # the two finished batches were not scored again
    assert not list((tmp_path / "res" / "scores" / "random").glob(".synthetic.parts-*"))
    # Same scores as an uninterrupted run.
    clean = run(RunConfig(method="random", fr="synthetic", dataset="synthetic", results=tmp_path / "clean",
                          progress=False, batch_size=16))
    assert read_score_table(tmp_path / "res" / clean["score_file"]).scores.tolist() == read_score_table(tmp_path / "res" / rec["score_file"]).scores.tolist()


def test_missing_weights_fail_before_alignment_and_are_recorded(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(CropStore, "ensure", lambda *a, **k: pytest.fail("aligned before the weights were checked"))
    with pytest.raises(MissingWeightsError, match="diffiqa_ddpm.pt"):
        _run(tmp_path, "diffiqa", quality_fr="same")
    reasons = json.loads((tmp_path / "res" / "runs" / "not_run.json").read_text())
    assert reasons and "diffiqa_ddpm.pt" in reasons[0]["reason"]


def test_official_quality_fr_is_the_default_and_its_absence_is_explained(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(CropStore, "ensure", lambda *a, **k: pytest.fail("aligned before the weights were checked"))
    with pytest.raises(MissingWeightsError, match=r"computes quality with cosface.*--quality-fr same"):
        _run(tmp_path, "diffiqa")


def test_paper_quality_fr_comes_from_the_card() -> None:
    frame = pd.DataFrame({"method": ["diffiqa", "faceqan", "ser-fiq", "random"], "fr": ["arcface"] * 4})
    wanted = [res_mod.paper_quality_fr(m, f) for m, f in zip(frame["method"], frame["fr"])]
    assert wanted == ["cosface", "cosface", "arcface", "none"]


def test_pauc_csv_with_a_truncated_line_is_refused(tmp_path) -> None:
    rec = _run(tmp_path, "random")
    path = tmp_path / "res" / "pauc.csv"
    text = path.read_text().rstrip("\n")
    path.write_text(text.rsplit(",", 1)[0] + "\n")
    n = len(res_mod.PAUC_COLUMNS)
    with pytest.raises(BenchError, match=rf"line 3: {n - 1} field\(s\), expected {n}"):
        res_mod.read_pauc_csv(tmp_path / "res")
    assert rec["run_id"]


def test_published_columns_only_are_read_as_the_paper_protocol(tmp_path) -> None:
    (tmp_path / "pauc.csv").write_text("discard,fr,method,dataset,pauc\n0.3,arcface,diffiqa,lfw,0.7\n")
    frame = res_mod.read_pauc_csv(tmp_path)
    assert "fmr" in frame.attrs["assumed"] and frame["quality_fr"].tolist() == ["cosface"]
    assert len(res_mod.paper_rows(frame)) == 1


def test_results_of_an_older_version_are_refused_with_the_reason(tmp_path) -> None:
    (tmp_path / "pauc.csv").write_text("discard,fr,method,dataset,pauc,edc_variant,run_id\n0.3,a,m,d,0.5,fixed-threshold,r\n")
    with pytest.raises(BenchError, match="older fiqa-bench"):
        res_mod.read_pauc_csv(tmp_path)


def test_each_pauc_carries_its_bootstrap_interval_and_replicates(tmp_path, capsys) -> None:
    oracle = _run(tmp_path, "oracle", bootstrap=200)
    random = _run(tmp_path, "random", bootstrap=200)
    frame = res_mod.read_pauc_csv(tmp_path / "res")
    assert frame[["pauc_lo", "pauc_hi"]].notna().all().all()
    assert (frame["pauc_lo"] <= frame["pauc_hi"]).all()
    for rec in (oracle, random):
        assert rec["bootstrap"]["replicates"] == 200 and rec["bootstrap"]["unit"] == "subject"
        assert (tmp_path / "res" / "runs" / rec["bootstrap"]["file"]).is_file()
    # Same resamples for both methods: the paired test reads the stored replicates.
    assert main(["compare", "--results", str(tmp_path / "res"), "--method", "oracle", "--method", "random"]) == 0
    assert "oracle" in capsys.readouterr().out
    skipped = _run(tmp_path, "random", bootstrap=0, seed=4)
    assert skipped["bootstrap"] is None
    last = res_mod.read_pauc_csv(tmp_path / "res").tail(2)
    assert last[["pauc_lo", "pauc_hi"]].isna().all().all()
