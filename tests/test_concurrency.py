"""Issue 22, item 3: concurrent `bench run`s sharing one score file.

Three runs of one method and dataset on different --folds into one results and cache folder, at
once: each must finish with its own images scored, the score file must end with every image any
of them scored, and no run may clear another's checkpointed parts. On a1664d3 the first run to
merge removed the others' parts folder and the later merges rewrote the file from a stale read,
so runs failed with "... have no score; pass --force" and the file could be left with 0 rows.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.cli import main
from bench.core import registry
from bench.core.score_store import read_score_table
from bench.pipeline.score_parts import ScoreParts

FOLDS = ("1", "2", "1,2")


def _bench_run(folds: str, results: str, cache: str, delay: float) -> None:
    """`bench run --method random --folds FOLDS` in a forked process, scoring like a slow method:
    one checkpointed part per batch of 16, 50 ms each, so the three runs overlap."""
    from bench.methods.mock import RandomQuality

    score = RandomQuality.score_dataset

    def slow(self, indices, ctx):
        time.sleep(0.05)
        return score(self, indices, ctx)

    RandomQuality.checkpoint_batches, RandomQuality.score_dataset = True, slow
    time.sleep(delay)
    sys.exit(main(["run", "--method", "random", "--fr", "synthetic", "--dataset", "synthetic", "--folds", folds,
                   "--batch-size", "16", "--bootstrap", "0", "--no-progress", "--results", results, "--cache", cache]))


def test_three_concurrent_runs_on_other_folds_share_one_score_file(tmp_path: Path) -> None:
    results, cache = tmp_path / "results", tmp_path / "cache"
    # The shared crops and embeddings first, as a lab's cache would hold them: the runs race on scores.
    assert main(["run", "--method", "oracle", "--fr", "synthetic", "--dataset", "synthetic", "--bootstrap", "0",
                 "--no-progress", "--results", str(tmp_path / "warm"), "--cache", str(cache)]) == 0
    ctx = multiprocessing.get_context("fork")
    runs = [ctx.Process(target=_bench_run, args=(folds, str(results), str(cache), 0.25 * k))
            for k, folds in enumerate(FOLDS)]
    for p in runs:
        p.start()
    for p in runs:
        p.join(180)
    assert [p.exitcode for p in runs] == [0, 0, 0]

    table = read_score_table(results / "scores" / "random" / "synthetic.parquet")
    dataset = registry.create("dataset", "synthetic").load(Path("."))
    used = {dataset.image_ids[i] for i in dataset.protocol.used_images()}
    assert set(table.ids) == used
    # The same scores as one uninterrupted run makes.
    assert main(["run", "--method", "random", "--fr", "synthetic", "--dataset", "synthetic", "--bootstrap", "0",
                 "--no-progress", "--results", str(tmp_path / "alone"), "--cache", str(cache)]) == 0
    alone = read_score_table(tmp_path / "alone" / "scores" / "random" / "synthetic.parquet")
    assert table.ids == alone.ids and np.array_equal(table.scores, alone.scores)
    rows = pd.read_csv(results / "pauc.csv", dtype={"folds": str})
    assert sorted(rows["folds"].unique()) == ["1", "2", "all"] and len(rows) == 6
    assert not list(results.rglob("*.parts-*")) and not list(results.rglob("*.tmp"))


def test_a_merge_removes_only_the_parts_it_merged(tmp_path: Path) -> None:
    score_file = tmp_path / "scores" / "random" / "synthetic.parquet"
    mine, theirs = ScoreParts(score_file, "ab" * 32), ScoreParts(score_file, "ab" * 32)
    mine.write(0, ["a", "b"], np.array([0.1, 0.2]), ["", ""], [0.0, 0.0], {})
    merged = mine.load()
    theirs.write(0, ["c"], np.array([0.3]), [""], [0.0], {})  # written after the merge read the parts
    mine.remove(merged.paths)
    assert theirs.load().ids == ["c"]
    theirs.remove(theirs.load().paths)
    assert not theirs.folder.exists()
