"""The stages every executor schedules: shared preparation per dataset, scoring in image ranges,
and the driver's evaluation of a cell.

Workers only write caches and score part files (each atomic, named so that workers never
write the same file); ``pauc.csv``, run records and ``runs/not_run.json`` are written by the
driver alone (:func:`evaluate`), one cell after another, so concurrent workers never race on
them and both executors append the same rows in the same order.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.core.threads import configure
from bench.pipeline.cell import RunConfig, resolve_cell
from bench.pipeline.plan import PlanCell, estimate, validate
from bench.pipeline.runner import prepare, run
from bench.pipeline.scoring import plan_scores, score_images, score_lock

# Per stage ("align", "embed", "align_method", "score"), what other tasks spent on a cell:
# {"seconds", "shared", and "cells" or "workers"} (bench.pipeline.runner.stage_timings).
Costs = dict[str, dict[str, Any]]
# A shard below this much estimated scoring time costs more in start-up (resolve, cache check) than it saves.
MIN_SHARD_SECONDS = 30.0


def bench_env() -> dict[str, str]:
    """The ``BENCH_*`` environment of the driver (cache, results, weights, data locations)."""
    return {k: v for k, v in os.environ.items() if k.startswith("BENCH_")}


def in_env(env: dict[str, str], fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn`` with the driver's ``BENCH_*`` environment: long-lived workers (a Ray cluster)
    were started with another one."""
    for key in [k for k in os.environ if k.startswith("BENCH_") and k not in env]:
        del os.environ[key]
    os.environ.update(env)
    configure()  # the thread budget the driver put in env (threads.worker_env)
    return fn(*args)


def prepare_dataset(cfgs: list[RunConfig]) -> list[Costs]:
    """Crops and embeddings once per (dataset, FR model), and the crops of every other domain a
    method scores on, for the cells ``cfgs`` of one dataset. Returns, per cell, the stages done
    for it here and their whole cost (``"shared": True``, with how many of ``cfgs`` use each),
    for its run record.

    One task per dataset: crops of one (dataset, domain) are shared by several FR models.
    """
    prepared: set[tuple[str, str]] = set()
    domains: set[str] = set()
    seconds: Counter[tuple[str, ...]] = Counter()
    uses: list[dict[str, tuple[str, ...]]] = []
    for cfg in cfgs:
        cell = resolve_cell(cfg)
        key = (cfg.fr, cell.fr_options_text)
        domain = cell.fr.domain
        # A method with no crop domain of its own and no FR model inside (random) reads no crops.
        if cell.method is not None and (cell.qfr is not None or cell.method_card.get("input", {}).get("domain", "fr") != "fr"):
            domain = cell.method.domain(cell.qfr)
        use = {"align": ("align", cell.fr.domain), "embed": ("embed", *key)}
        if domain != cell.fr.domain:
            use["align_method"] = ("align", domain)
        uses.append(use)
        if key in prepared and domain in domains:
            continue
        prep = prepare(cell)
        prepared.add(key)
        domains.add(cell.fr.domain)
        seconds[use["align"]] += prep.timings["align"]
        seconds[use["embed"]] += prep.timings["embed"]
        if domain not in domains:
            t0 = time.perf_counter()
            prep.method_crops.ensure(prep.scored, progress=cfg.progress)
            seconds[("align", domain)] += time.perf_counter() - t0
            domains.add(domain)
    cells = Counter(resource for use in uses for resource in use.values())
    return [{stage: {"seconds": seconds[resource], "shared": True, "cells": cells[resource]}
             for stage, resource in use.items()} for use in uses]


def score_range(cfg: RunConfig, shard: int, n_shards: int) -> dict[str, float]:
    """Score the images of range ``shard`` of ``n_shards`` equal ranges of the cell's scored
    images that are still to do; part files only, no merge (under the score file's shared lock:
    no run merges it meanwhile). Returns ``{"images": scored, "seconds": spent scoring}``.

    The ranges split the cell's whole image list, not what is left to do, so a range is the
    same whenever a worker starts: a restarted shard skips its finished parts and never
    scores another shard's images.
    """
    cell = resolve_cell(cfg)
    if cell.method is None or (cell.imported and not cfg.force):
        return {"images": 0, "seconds": 0.0}
    prep = prepare(cell)
    with score_lock(cell.score_file, shared=True):
        plan = plan_scores(cell, prep.scored, prep.fr_crops.digests(prep.scored))
        mine = np.intersect1d(np.array_split(prep.scored, n_shards)[shard], plan.todo)
        t0 = time.perf_counter()
        score_images(cell, plan, mine, prep.method_crops, lambda: prep.embeddings)
        return {"images": len(mine), "seconds": time.perf_counter() - t0}


def scored_elsewhere(ranges: list[dict[str, float]]) -> Costs:
    """The score stage of a cell whose images worker tasks scored (:func:`score_range` results)."""
    if not ranges:
        return {}
    return {"score": {"seconds": sum(r["seconds"] for r in ranges), "shared": False, "workers": len(ranges)}}


def n_shards(score_seconds: float, to_score: int, workers: int, batch_size: int) -> int:
    """How many ranges to score a cell in: one per worker when its scoring is long, fewer when not."""
    if to_score == 0:
        return 0
    by_time = max(1, math.ceil(score_seconds / MIN_SHARD_SECONDS))
    by_size = max(1, math.ceil(to_score / max(batch_size, 1)))
    return int(min(workers, by_time, by_size))


def evaluate(cfg: RunConfig, elsewhere: Costs | None = None) -> dict[str, Any]:
    """The driver's step: merge the score parts, compare, EDC, append the pAUC rows; ``elsewhere``:
    what the preparation and the workers spent on the cell, for its run record."""
    return run(cfg, elsewhere)


@dataclass
class Work:
    """A runnable cell with the number of image ranges its scoring is split into."""

    pc: PlanCell
    shards: int = 0
    error: str | None = None  # it no longer resolves (something changed on disk since the check)


def plan_work(cells: list[PlanCell], workers: int) -> list[Work]:
    """How many score ranges each cell gets, from its estimate taken after the shared preparation."""
    work = []
    for pc, cell in validate(cells):
        if cell is None:
            work.append(Work(pc, 0, pc.reason))
            continue
        est = estimate(pc, cell)
        work.append(Work(pc, n_shards(est.score * pc.ms_per_image / 1000.0, est.score, workers, pc.cfg.batch_size)))
    return work
