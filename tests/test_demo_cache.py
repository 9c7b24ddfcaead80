"""Issue 28: the demo's cells reuse the shared preparation's embeddings, whatever happens to the
working directory or the cache folder meanwhile.

``make demo`` crashed once in a fresh clone under load: the first cell embedded LFW again from
batch 0 after the shared preparation had, and 21 s later ``open_memmap(emb_path, "w+")`` failed
with FileNotFoundError on ``demo-out/cache/embeddings/...``. The cache location was relative, so
it named another folder once the working directory changed under the process, and the writer
made its folder once, long before creating the file in it. These tests force those
interleavings with the demo's own cell builder (:func:`bench.demo.demo_cells`) on the synthetic
dataset and FR model, and count every image embedded.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from bench.core import paths, registry
from bench.datasets.crops import CropStore
from bench.demo import demo_cells, demo_locations
from bench.fr.synthetic import SyntheticFR
from bench.pipeline.embeddings import embed_dataset
from bench.pipeline.executors import execute

# The demo plan (plans/demo.toml) with the synthetic FR model and dataset: the same executor
# path (one shared preparation, then the cells in plan order), in seconds.
PLAN = """
[settings]
discards = [0.2, 0.3]
[methods.random]
ms_per_image = 0.0
[methods.oracle]
ms_per_image = 0.0
[[grid]]
name = "demo"
methods = ["random", "oracle"]
fr = ["synthetic"]
datasets = ["synthetic"]
"""


def count_embedded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Images the synthetic FR model embeds, in this process: a one-item list, updated in place."""
    embedded, embed = [0], SyntheticFR.embed

    def counting(fr: SyntheticFR, crops: np.ndarray) -> np.ndarray:
        embedded[0] += len(crops)
        return embed(fr, crops)

    monkeypatch.setattr(SyntheticFR, "embed", counting)
    return embedded


def used_images() -> int:
    dataset = registry.create("dataset", "synthetic").load(Path("."))
    return len(dataset.protocol.used_images())


def test_demo_locations_are_absolute_when_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCH_CACHE")
    where = demo_locations(Path("demo-out"))
    assert where["cache"] == tmp_path / "demo-out" / "cache"
    assert all(path.is_absolute() for path in where.values())
    assert paths.cache_dir("rel").is_absolute() and paths.results_dir("rel") == tmp_path / "rel"
    monkeypatch.setenv("BENCH_CACHE", "shared-cache")
    assert demo_locations(Path("demo-out"))["cache"] == tmp_path / "shared-cache"


def test_demo_plan_embeds_once_though_the_working_directory_changes(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The cells reuse the preparation's embeddings: one pass over the dataset in all, even when
    the working directory changes between the preparation and the cells (what the relative
    ``demo-out/cache`` of a1664d3 could not survive: every cell embedded and aligned again)."""
    from bench.pipeline.executors import local

    clone, elsewhere = tmp_path / "clone", tmp_path / "elsewhere"
    clone.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(clone)
    plan = clone / "demo.toml"
    plan.write_text(PLAN)
    # As bench.demo passes them: relative to where `make demo` was started.
    cells = demo_cells(plan, None, Path("demo-out/results"), Path("demo-out/cache"), None, faceqan=False, ddpm=None)
    assert [pc.cfg.method for pc in cells] == ["random", "oracle"]
    assert all(pc.cfg.cache == clone / "demo-out" / "cache" for pc in cells)
    assert all(pc.cfg.results == clone / "demo-out" / "results" for pc in cells)

    prepare = local.prepare_dataset

    def prepare_then_move(cfgs):
        out = prepare(cfgs)
        os.chdir(elsewhere)  # the working directory changes under the running demo
        return out

    monkeypatch.setattr(local, "prepare_dataset", prepare_then_move)
    embedded = count_embedded(monkeypatch)
    outcome = execute(cells, "local", 1)
    assert not outcome.failed and not outcome.not_run and len(outcome.records) == 2
    assert embedded[0] == used_images()
    assert not any(elsewhere.iterdir())
    assert len(list((clone / "demo-out" / "results" / "runs").glob("*.json"))) == 2


def test_embedding_folder_removed_mid_pass_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder made when embedding starts is gone when the first batch is done (a cleanup, or
    a relative path whose working directory changed): the cache file is still made, just in
    time, with the right rows. a1664d3 failed here with the log's FileNotFoundError from
    ``np.lib.format.open_memmap(emb_path, mode="w+")``."""
    fr = registry.create("fr", "synthetic")
    dataset = registry.create("dataset", "synthetic").load(Path("."))
    crops = CropStore(dataset, fr.domain, tmp_path / "cache")
    used = dataset.protocol.used_images()
    embed, calls = SyntheticFR.embed, [0]

    def embed_while_the_folder_goes(self: SyntheticFR, batch: np.ndarray) -> np.ndarray:
        calls[0] += 1
        if calls[0] == 1:
            shutil.rmtree(tmp_path / "cache" / "embeddings")
        return embed(self, batch)

    monkeypatch.setattr(SyntheticFR, "embed", embed_while_the_folder_goes)
    got = embed_dataset(fr, crops, used, batch_size=64, progress=False)
    monkeypatch.setattr(SyntheticFR, "embed", embed)
    expected = fr.embed(crops.get(used))
    np.testing.assert_array_equal(got[used], expected)
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def _embed_in_child(cache: str, counter, started, batch_seconds: float) -> None:
    """A process embedding the synthetic dataset into ``cache``, counting images in ``counter``."""
    embed = SyntheticFR.embed

    def slow_counting(fr: SyntheticFR, crops: np.ndarray) -> np.ndarray:
        started.set()
        with counter.get_lock():
            counter.value += len(crops)
        time.sleep(batch_seconds)
        return embed(fr, crops)

    SyntheticFR.embed = slow_counting
    fr = registry.create("fr", "synthetic")
    dataset = registry.create("dataset", "synthetic").load(Path("."))
    embed_dataset(fr, CropStore(dataset, fr.domain, Path(cache)), dataset.protocol.used_images(), batch_size=32,
                  progress=False)


def test_a_preparation_and_a_concurrent_run_embed_once(tmp_path: Path) -> None:
    """Two processes embedding the same cache at once (a shared preparation and a `bench run` of
    the same dataset): the second waits for the first's lock and then finds every row made, so
    the dataset is embedded once; without the lock both embedded everything into one file."""
    ctx = multiprocessing.get_context("fork")
    counter, started = ctx.Value("i", 0), ctx.Event()
    first = ctx.Process(target=_embed_in_child, args=(str(tmp_path / "cache"), counter, started, 0.2))
    first.start()
    assert started.wait(60)
    second = ctx.Process(target=_embed_in_child, args=(str(tmp_path / "cache"), counter, ctx.Event(), 0.0))
    second.start()
    first.join(120)
    second.join(120)
    assert first.exitcode == 0 and second.exitcode == 0
    assert counter.value == used_images()
    fr = registry.create("fr", "synthetic")
    dataset = registry.create("dataset", "synthetic").load(Path("."))
    crops = CropStore(dataset, fr.domain, tmp_path / "cache")
    used = dataset.protocol.used_images()
    np.testing.assert_array_equal(embed_dataset(fr, crops, used, progress=False)[used], fr.embed(crops.get(used)))
