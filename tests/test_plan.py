"""Plans (bench.pipeline.plan), lists and `all` in `bench run`, dry runs, the local executor, the demo plan."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.core import resources
from bench.core.errors import BenchError
from bench.pipeline.cell import RunConfig
from bench.pipeline.plan import PlanError, estimate, expand, from_lists, load_plan, registered_real_datasets, validate

PLANS = resources.folder("plans")
SYN = ["--fr", "synthetic", "--dataset", "synthetic", "--no-progress"]


def _rows(results: Path) -> pd.DataFrame:
    frame = pd.read_csv(results / "pauc.csv")
    return frame.drop(columns=["run_id"]).reset_index(drop=True)


def _base(tmp_path: Path, **kw) -> RunConfig:
    return RunConfig(method="", fr="", dataset="", results=tmp_path / "res", cache=tmp_path / "cache", progress=False, **kw)


def test_paper_plan_has_every_cell_of_tables_2_to_5(tmp_path) -> None:
    plan = load_plan(PLANS / "diffiqa_ijcb2023.toml")
    cells = expand(plan, _base(tmp_path))
    by_key = {(c.cfg.method, c.cfg.fr, c.cfg.dataset): c for c in cells}
    # 12 methods x 4 FR models x 7 datasets, plus the 3 ablation variants on CosFace x 4 datasets.
    assert len(cells) == 12 * 4 * 7 + 3 * 4
    assert len({c.cfg.method for c in cells}) == 15
    ablation = by_key[("diffiqa", "cosface", "cplfw")]
    assert set(ablation.grids) == {"table2+5", "table4"}
    # SER-FIQ on XQLFW is n/a in Table 2 but timed for Table 3 (CosFace): only that one is run.
    assert by_key[("ser-fiq", "adaface", "xqlfw")].excluded
    assert by_key[("ser-fiq", "cosface", "xqlfw")].excluded is None
    assert sum(1 for c in cells if c.excluded) == 3
    # The paper's protocol without extra flags: CosFace inside DifFIQA's and FaceQAN's scores.
    for method in ("diffiqa", "diffiqa-noflip", "diffiqa-noforward", "diffiqa-t20", "faceqan"):
        assert {c.cfg.quality_fr for c in cells if c.cfg.method == method} == {"cosface"}
    assert all(c.cfg.folds is None and c.cfg.discards == (0.2, 0.3) for c in cells)
    costs = [c.ms_per_image for c in cells]
    assert costs == sorted(costs) and cells[0].cfg.method == "cr-fiqa" and cells[-1].cfg.method == "diffiqa-t20"


def test_shipped_plans_load_by_name() -> None:
    assert load_plan(Path("demo")).source == str(PLANS / "demo.toml")
    assert load_plan(Path("diffiqa_ijcb2023.toml")).grids[0].name == "table2+5"


def test_import_only_cells_say_to_import(tmp_path) -> None:
    plan = from_lists("pcnet,random", "synthetic", "synthetic")
    checked = {c.cfg.method: (c, cell) for c, cell in validate(expand(plan, _base(tmp_path)))}
    pc, cell = checked["pcnet"]
    assert cell is None and "bench import-scores --method pcnet" in pc.reason
    assert checked["random"][1] is not None
    entries = json.loads((tmp_path / "res" / "runs" / "not_run.json").read_text())
    assert [e["method"] for e in entries] == ["pcnet"]


def test_all_datasets_are_the_real_ones_and_names_are_checked() -> None:
    plan = from_lists("random", "synthetic", "all")
    assert plan.grids[0].datasets == tuple(registered_real_datasets())
    assert "synthetic" not in plan.grids[0].datasets and "lfw" in plan.grids[0].datasets
    with pytest.raises(BenchError, match="randon"):
        from_lists("randon", "synthetic", "synthetic")


@pytest.mark.parametrize("text, match", [
    ("[[grid]]\nmethods=['random']\nfr=['synthetic']\n", "missing datasets"),
    ("[[grid]]\nmethods=['random']\nfr=['synthetic']\ndatasets=['synthetic']\ncolour='red'\n", "unknown key"),
    ("[settings]\nfold=[1]\n[[grid]]\nmethods=['random']\nfr=['synthetic']\ndatasets=['synthetic']\n", "unknown key"),
    ("[[grid]]\nmethods=['random']\nfr=['synthetic']\ndatasets=['synthetic']\n[[grid.exclude]]\nmethod='random'\n",
     "say why"),
    ("[[grid]]\nmethods=[]\nfr=['synthetic']\ndatasets=['synthetic']\n", "non-empty list"),
    ("[plan\n", "not valid TOML"),
    ("[settings]\nfolds='1,2'\n[[grid]]\nmethods=['random']\nfr=['synthetic']\ndatasets=['synthetic']\n", "folds"),
    ("[settings]\nseed=1.5\n[[grid]]\nmethods=['random']\nfr=['synthetic']\ndatasets=['synthetic']\n", "wrong type"),
])
def test_bad_plans_are_one_line_errors(tmp_path, text, match) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PlanError, match=match):
        load_plan(path)


def test_cli_lists_run_every_cell(tmp_path, capsys) -> None:
    res = tmp_path / "res"
    assert main(["run", "--method", "random,oracle", *SYN, "--results", str(res)]) == 0
    rows = _rows(res)
    assert sorted(set(rows["method"])) == ["oracle", "random"] and len(rows) == 4
    assert "2 cell(s) evaluated" in capsys.readouterr().out


def test_cli_plan_errors_are_one_line(tmp_path, capsys) -> None:
    assert main(["run", "--plan", str(tmp_path / "none.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["run", "--plan", str(PLANS / "demo.toml"), "--method", "random"]) == 2
    assert "drop --method" in capsys.readouterr().err
    assert main(["run", "--fr", "synthetic"]) == 2
    assert "--plan FILE" in capsys.readouterr().err


def test_dry_run_lists_cells_with_cost_and_reasons_and_computes_nothing(tmp_path, capsys) -> None:
    res, cache = tmp_path / "res", tmp_path / "cache"
    args = ["run", "--method", "random,oracle", "--fr", "synthetic", "--dataset", "synthetic,lfw", "--data-root",
            str(tmp_path / "nodata"), "--results", str(res), "--cache", str(cache), "--dry-run", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    runnable = [line for line in out if line.startswith("runnable")]
    assert len(runnable) == 2 and all("200 images: align 200, embed 200, score 200 to do" in x for x in runnable)
    missing = [line for line in out if line.startswith("not run")]
    assert len(missing) == 2 and all("lfw: not found" in x for x in missing)
    assert out[-1] == "4 cells: 2 runnable, 2 cannot run here, 0 excluded by the plan"
    # A dry run writes nothing, not even runs/not_run.json (issue 22).
    assert not res.exists() and not cache.exists()


def test_estimate_reads_the_caches(tmp_path) -> None:
    cells = expand(from_lists("random,oracle", "synthetic", "synthetic"), _base(tmp_path))
    ((pc, cell),) = validate(cells[:1])
    assert (estimate(pc, cell).align, estimate(pc, cell).score) == (200, 200)
    assert main(["run", "--method", "random,oracle", *SYN, "--results", str(tmp_path / "res"),
                 "--cache", str(tmp_path / "cache")]) == 0
    for pc, cell in validate(cells):
        est = estimate(pc, cell)
        assert (est.images, est.align, est.embed, est.score) == (200, 0, 0, 0), pc.label


def test_plan_settings_and_command_line_overrides(tmp_path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[settings]\nfolds=[1]\ndiscards=[0.1]\nseed=3\n[methods.ser-fiq]\nquality_fr='dlib-torch'\n"
                    "options={passes=7}\n[[grid]]\nmethods=['ser-fiq','random']\nfr=['dlib']\ndatasets=['lfw']\n")
    cells = {c.cfg.method: c.cfg for c in expand(load_plan(path), _base(tmp_path))}
    assert cells["ser-fiq"].quality_fr == "dlib-torch" and cells["ser-fiq"].method_options == {"passes": 7}
    assert cells["random"].quality_fr is None and cells["random"].method_options == {}
    assert cells["ser-fiq"].folds == [1] and cells["ser-fiq"].discards == (0.1,) and cells["ser-fiq"].seed == 3
    over = {c.cfg.method: c.cfg for c in expand(load_plan(path), _base(tmp_path), {"folds": None, "quality_fr": "same"})}
    assert over["ser-fiq"].folds is None and over["ser-fiq"].quality_fr == "same"


@pytest.mark.slow  # worker processes start torch: about 8 s on 2 cores
def test_local_workers_write_what_one_process_writes(tmp_path) -> None:
    path = tmp_path / "p.toml"
    # A high cost prior makes the executor split scoring into one range per worker.
    path.write_text("[methods.random]\nms_per_image=5000\n[[grid]]\nmethods=['random','oracle']\nfr=['synthetic']\n"
                    "datasets=['synthetic']\n")
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["run", "--plan", str(path), "--results", str(one), "--cache", str(tmp_path / "c1"), "--no-progress"]) == 0
    assert main(["run", "--plan", str(path), "--results", str(two), "--cache", str(tmp_path / "c2"), "--no-progress",
                 "--jobs", "2"]) == 0
    pd.testing.assert_frame_equal(_rows(one), _rows(two), check_exact=True)
    a = pd.read_parquet(one / "scores" / "random" / "synthetic.parquet")
    b = pd.read_parquet(two / "scores" / "random" / "synthetic.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not list(two.rglob("*.tmp")) and not list(two.rglob("part-*.npz"))


def test_missing_ray_is_a_one_line_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["run", "--method", "random", *SYN, "--results", str(tmp_path / "res"), "--executor", "ray"]) == 2
    assert "install fiqa-bench[ray]" in capsys.readouterr().err


def test_demo_runs_the_demo_plan(tmp_path) -> None:
    from bench.demo import demo_cells

    cells = demo_cells(PLANS / "demo.toml", tmp_path / "data", tmp_path / "res", tmp_path / "cache", folds=[1, 2],
                       faceqan=False, ddpm=None)
    assert [(c.cfg.method, c.cfg.fr, c.cfg.dataset, c.cfg.quality_fr) for c in cells] == [
        ("random", "dlib", "lfw", None), ("oracle", "dlib", "lfw", None), ("ser-fiq", "dlib", "lfw", "dlib-torch")]
    assert all(c.cfg.folds == [1, 2] for c in cells)
    slow = demo_cells(PLANS / "demo.toml", tmp_path / "data", tmp_path / "res", tmp_path / "cache", folds=None,
                      faceqan=True, ddpm=tmp_path / "ddpm.pt")
    assert sorted(c.cfg.method for c in slow[-2:]) == ["diffiqa", "faceqan"]
    (diffiqa,) = [c for c in slow if c.cfg.method == "diffiqa"]
    assert diffiqa.cfg.method_weights == tmp_path / "ddpm.pt" and all(c.cfg.folds is None for c in slow)
    assert diffiqa.cfg.method_options == {"repeats": 1}  # the reference set's CI cell (n = 1)
