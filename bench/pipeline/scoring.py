"""Scores of a cell's images: reused, re-scored when their image changed, checkpointed, merged.

Score files hold scores per image: a run adds the images it scored and keeps the others; an
image whose source file changed (its sha256 differs from the one recorded beside its score)
is re-scored; an existing score is recomputed only with ``--force``; scores made with another
setup (method version, weights, quality FR model, options, seed) are never mixed in or
silently replaced; imported scores (``bench import-scores``) are used as they are. Each batch
is written as an atomic part file (:mod:`bench.pipeline.score_parts`) so an interrupted run resumes,
and several workers may score disjoint image ranges of one cell before one merge.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.core import paths
from bench.core.errors import BenchError
from bench.core.io import file_lock
from bench.core.provenance import base_metadata
from bench.core.records import NO_QUALITY_FR
from bench.core.score_store import ScoreTable, align_scores, read_score_table, write_scores
from bench.datasets.base import FaceDataset
from bench.datasets.crops import CropStore
from bench.methods.base import ScoreContext
from bench.pipeline.cell import Cell
from bench.pipeline.score_parts import ScoreParts


def _setup(cell: Cell) -> dict[str, str]:
    """What a score depends on besides the image: reusable scores must match it exactly."""
    assert cell.method is not None
    qfr = cell.qfr.provenance() if cell.qfr is not None else NO_QUALITY_FR
    return {"method": cell.method.name, "method_version": str(cell.method_card.get("version")),
            "weights_sha256": cell.weights_sha256, "quality_fr": json.dumps(qfr, sort_keys=True),
            "method_options": cell.method_options_text, "seed": str(cell.cfg.seed)}


def _merge_extras(extras: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``extra`` from the per-batch ones: last value per key; runtime breakdowns pooled
    over batches (the first of several is warm-up and left out, as in the per-batch timing)."""
    out: dict[str, Any] = {}
    for extra in extras:
        out.update({k: v for k, v in extra.items() if k != "runtime_breakdown"})
    parts = [e["runtime_breakdown"] for e in extras if "runtime_breakdown" in e]
    parts = parts[1:] if len(parts) > 1 else parts
    if parts:
        pooled = {}
        for step in parts[0]:
            means = np.array([p[step][0] for p in parts])
            second = np.array([p[step][1] ** 2 + p[step][0] ** 2 for p in parts])
            pooled[step] = [float(means.mean()), float(math.sqrt(max(second.mean() - means.mean() ** 2, 0.0)))]
        out["runtime_breakdown"] = pooled
    return out


@dataclass
class ScorePlan:
    """Which of a cell's images need scoring (the others are in the score file or in parts)."""

    setup: dict[str, str]
    setup_text: str
    current: dict[str, str]  # image id -> source digest now, for the images of this run
    parts: ScoreParts
    todo: np.ndarray  # dataset indices still to score


def score_lock(score_file: Path, shared: bool = False) -> contextlib.AbstractContextManager[None]:
    """The lock of one score file: exclusive around a run's plan → score → merge, so concurrent
    runs of one method and dataset (say, on other folds) never merge over each other; ``shared``
    for a worker's score range, which only adds its own part files."""
    return file_lock(score_file.with_name(f".{score_file.name}.lock"), shared=shared)


def _kept(cell: Cell, setup: dict[str, str], setup_text: str,
          current: dict[str, str]) -> tuple[ScoreTable | None, dict[str, tuple[float, str]]]:
    """The score file as it is now, and its rows this run keeps: same setup, not forced, not stale."""
    path = cell.score_file
    old = read_score_table(path) if path.exists() else None
    kept: dict[str, tuple[float, str]] = {}
    if old is not None and old.meta.get("setup") != setup_text and not cell.cfg.force:
        raise BenchError(f"{path}: scores were made with another setup ({_setup_difference(old.meta, setup)}); "
                         "pass --force to recompute them")
    if old is not None and old.meta.get("setup") == setup_text:
        kept = dict(zip(old.ids, zip(old.scores.tolist(), old.digests or [""] * len(old.ids))))
    if cell.cfg.force:
        kept = {i: v for i, v in kept.items() if i not in current}
    # A score is stale when the image file it was computed from has changed since.
    return old, {i: v for i, v in kept.items() if i not in current or v[1] == current[i]}


def plan_scores(cell: Cell, needed: np.ndarray, digests: list[str]) -> ScorePlan:
    """Compare the score file (read now, not when the cell was resolved) and the checkpointed
    parts with this run's images (no scoring)."""
    ds, path = cell.dataset, cell.score_file
    assert cell.method is not None
    ids = [ds.image_ids[i] for i in needed]
    setup = _setup(cell)
    setup_text = json.dumps(setup, sort_keys=True)
    current = dict(zip(ids, digests))
    _, kept = _kept(cell, setup, setup_text, current)
    parts = ScoreParts(path, hashlib.sha256(setup_text.encode()).hexdigest())
    finished = set(parts.load().ids)
    todo = np.array([i for i, image_id in zip(needed, ids) if image_id not in kept and image_id not in finished],
                    dtype=np.int64)
    return ScorePlan(setup, setup_text, current, parts, todo)


def score_images(cell: Cell, plan: ScorePlan, indices: np.ndarray, crops: CropStore, embeddings: Any) -> None:
    """Score ``indices`` (a subset of ``plan.todo``) in checkpointed batches: part files only, no merge.

    Executors call this on disjoint image ranges of one cell in several workers; parts are
    named by their first image and their writer, so workers never write the same file.
    """
    cfg, ds = cell.cfg, cell.dataset
    assert cell.method is not None
    if not len(indices):
        return
    step = cfg.batch_size if cell.method.checkpoint_batches else len(indices)
    # One bar (with ETA) over the images of the stage; the method's own per-call bar only when
    # the whole stage is one call (else each checkpoint batch would print a new "0/1" bar).
    ctx = ScoreContext(dataset=ds, fr=cell.qfr if cell.method.needs_fr else None, crops=crops, device=cfg.device,
                       seed=cfg.seed, batch_size=cfg.batch_size, cache_dir=paths.cache_dir(cfg.cache),
                       embeddings=embeddings, progress=cfg.progress and step >= len(indices), score_file=cell.score_file,
                       embeddings_fr=cell.fr)
    with tqdm(total=len(indices), desc=f"score {cell.method.name} [{ds.name}]", unit="image",
              disable=not cfg.progress or step >= len(indices)) as bar:
        for start in range(0, len(indices), step):
            chunk = indices[start : start + step]
            result = cell.method.score_dataset(chunk, ctx)
            chunk_ids = [ds.image_ids[i] for i in chunk]
            plan.parts.write(int(chunk[0]), chunk_ids, result.scores, [plan.current[i] for i in chunk_ids],
                             list(result.seconds_per_image), result.extra)
            bar.update(len(chunk))


def merge_scores(cell: Cell, plan: ScorePlan) -> ScoreTable:
    """Write the score file from its rows and the parts, then remove the parts merged.

    The caller holds the score file's :func:`score_lock`. The file is read again here, so the
    rows other runs merged since this run's plan are kept; a merge that has nothing to write
    writes nothing (never a file of 0 rows).
    """
    cfg, path = cell.cfg, cell.score_file
    assert cell.method is not None
    done = plan.parts.load()
    old, kept = _kept(cell, plan.setup, plan.setup_text, plan.current)
    if not done.ids and old is not None and len(kept) == len(old.ids):
        return old  # nothing new, nothing dropped
    merged = {**kept, **{i: (s, d) for i, s, d in zip(done.ids, done.scores, done.digests)}}
    if not merged:
        return ScoreTable([], np.empty(0), None, {"setup": plan.setup_text})
    timed = done.seconds_per_image[1:] if len(done.seconds_per_image) > 1 else done.seconds_per_image
    spi = [s for part in timed for s in part]
    meta: dict[str, Any] = {
        "method": cell.method.name, "method_version": cell.method_card.get("version"),
        "higher_is_better": cell.method_card.get("higher_is_better"), "weights_sha256": cell.weights_sha256,
        "fr": cell.quality_fr, "quality_fr_weights_sha256": cell.qfr.weights_sha256 if cell.qfr else "none",
        "dataset": cell.dataset.name, **base_metadata(cfg.device),
        "seconds_per_image_mean": float(np.mean(spi)) if spi else float("nan"),
        "seconds_per_image_std": float(np.std(spi)) if spi else float("nan"),
        "n_timed_batches": len(spi), "seed": cfg.seed, "method_options": cell.method_options_text,
        "setup": plan.setup_text,
    }
    for key, value in _merge_extras(done.extras).items():
        meta[key] = json.dumps(value)
    order = sorted(merged)
    write_scores(path, order, np.array([merged[i][0] for i in order]), meta, [merged[i][1] for i in order])
    plan.parts.remove(done.paths)
    return read_score_table(path)


def score_cell(cell: Cell, needed: np.ndarray, crops: CropStore, digests: list[str], embeddings: Any,
               timings: dict[str, float]) -> tuple[np.ndarray, dict[str, str]]:
    """Native scores of ``needed`` (aligned to the dataset): reuse, score the rest, merge."""
    if cell.imported and not cell.cfg.force:
        assert cell.existing is not None
        return _aligned(cell.existing, cell.dataset, needed, cell.score_file), cell.existing.meta
    with score_lock(cell.score_file):
        plan = plan_scores(cell, needed, digests)
        t0 = time.perf_counter()
        score_images(cell, plan, plan.todo, crops, embeddings)
        timings["score"] = time.perf_counter() - t0
        table = merge_scores(cell, plan)
    return _aligned(table, cell.dataset, needed, cell.score_file), {k: str(v) for k, v in table.meta.items()}


def _setup_difference(meta: dict[str, str], setup: dict[str, str]) -> str:
    if "setup" not in meta:
        return "an older fiqa-bench that did not record it"
    old = json.loads(meta["setup"])
    diffs = [f"{k} {old.get(k)!r} → {v!r}" for k, v in setup.items() if old.get(k) != v]
    return "; ".join(diffs) or "unknown difference"


def _aligned(table: ScoreTable, ds: FaceDataset, needed: np.ndarray, path: Path) -> np.ndarray:
    """Scores aligned to the dataset's image list; every image in ``needed`` must be present."""
    hint = ("import them too (bench import-scores), or pass --force to compute every score here"
            if "imported_from" in table.meta else "pass --force to recompute")
    return align_scores(table, path, ds.image_ids, needed, hint)
