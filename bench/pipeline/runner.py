"""``bench run``: scores + embeddings + protocol → EDC → pAUC rows, curve points, run metadata.

A run resolves its cell first (:mod:`bench.pipeline.cell`: every option, file and weight checked
before any heavy work), then runs the stages, each cached on disk: crops and embeddings
(keyed by the content of each source image, in the cache folder), scores (per image, in the
results folder, checkpointed per batch: :mod:`bench.pipeline.scoring`), and finally comparisons and
EDC, appended to ``pauc.csv`` with the cell's full identity (:data:`bench.results.table.IDENTITY`)
so no setting that changes a number can be confused with another.

Beside the EDC a run records what lets a reader judge and convert its numbers (:func:`curve_extras`):
how many non-mated comparisons the FMR threshold rests on (``fmr_support``: below
:data:`bench.stats.edc.MIN_IMPOSTORS` the FMR target is nominal), the author scripts' AUC
(``author_scripts_auc``, CR-FIQA's ERC convention, whatever ``--edc-variant``), and the
error-versus-FMR points in ``curves/<run_id>.evf.parquet``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.core import paths
from bench.core.io import append_text, atomic_path, atomic_write_text
from bench.core.provenance import base_metadata, data_hashes, software_versions
from bench.core.records import PAUC_COLUMNS, add_pauc_note_column
from bench.datasets.crops import UNREADABLE, CropStore
from bench.datasets.protocol import PairProtocol
from bench.pipeline.cell import (
    DEFAULT_DISCARDS,
    SAME_FR,
    Cell,
    RunConfig,
    clear_not_run,
    create_fr,
    identity,
    load_dataset,
    record_not_run,
    resolve_cell,
)
from bench.pipeline.embeddings import embed_dataset
from bench.pipeline.scoring import score_cell
from bench.pipeline.similarity import compare
from bench.stats import edc as edc_engine

BOOTSTRAP_SEED = 2023  # one seed for every method: paired differences use the same resamples
RECOMPUTED_BOOTSTRAP_LIMIT = 1_000_000
# Discard fractions at which the EDC band (pointwise bootstrap interval of FNMR) is stored.
BAND_GRID = np.linspace(0.0, 1.0, 401)
# The EVF file: FNMR at these FMR targets (half-decades, as other papers' operating points) after
# discarding these fractions (0: the FR model alone; the paper's pAUC limits).
EVF_FMRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
EVF_DISCARDS = (0.0, 0.2, 0.3)

__all__ = ["DEFAULT_DISCARDS", "SAME_FR", "Cell", "RunConfig", "create_fr", "identity", "load_dataset", "record_not_run",
           "resolve_cell", "run", "prepare", "Prepared"]


def _text(value: Any) -> str:
    """A bound for pauc.csv: full precision, empty when undefined."""
    return "" if value == "" or value is None or not np.isfinite(float(value)) else repr(float(value))


def _bootstrap(cell: Cell, protocol: PairProtocol, comps: Any, runs_dir: Path, run_id: str) -> dict[str, Any] | None:
    """The cell's bootstrap interval (writes ``runs/<run_id>.boot.npz``), or None when skipped.

    Every method of a cell draws the same resamples (one fixed seed, the same units), so the
    stored replicates of two methods give their paired difference (``bench compare``).
    """
    from bench.stats import bootstrap

    cfg = cell.cfg
    if cfg.bootstrap <= 0:
        return None
    if cfg.edc_variant != "fixed-threshold" and len(comps.nonmated_similarity) > RECOMPUTED_BOOTSTRAP_LIMIT:
        # The recomputed-threshold replicate has no tail shortcut: ~10 s each at IJB-C size.
        return {"skipped": f"recomputed-threshold bootstrap above {RECOMPUTED_BOOTSTRAP_LIMIT:,} non-mated comparisons"}
    units = bootstrap.units_from_dataset(cell.dataset, protocol)
    return bootstrap.bootstrap_run(runs_dir, run_id, comps.mated_similarity, comps.mated_quality,
                                   comps.nonmated_similarity, units, cfg.discards, cfg.fmr, replicates=cfg.bootstrap,
                                   seed=BOOTSTRAP_SEED, variant=cfg.edc_variant, nonmated_quality=comps.nonmated_quality,
                                   band_grid=BAND_GRID, interval=cfg.interval)


def _run_id(cfg: RunConfig) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{stamp}-{cfg.method}-{paths.safe_name(cfg.fr)[:40]}-{cfg.dataset}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class CurveExtras:
    """What a run stores beside its EDC (:func:`curve_extras`): the run record's ``fmr_support``
    and ``author_scripts_auc`` (None when undefined), and the EVF points as a table."""

    fmr_support: dict[str, Any]
    author_scripts_auc: float | None
    evf: pa.Table


def curve_extras(comps: Any, nonmated_fold: np.ndarray | None, fmr: float, curve: edc_engine.Edc) -> CurveExtras:
    """The FMR support, the author scripts' AUC and the EVF points of one cell's comparisons.

    ``nonmated_fold``: the protocol fold of each non-mated comparison (None without folds, e.g.
    IJB-C templates); ``curve``: the run's EDC, reused when it is already the recomputed-threshold
    one. The per-fold realised FMR counts each fold's non-mated similarities at or above the
    cell's threshold (``curve.threshold``: for both variants the quantile of all non-mated
    comparisons, the one :func:`bench.stats.edc.fmr_support` counts against).
    """
    nonmated = np.asarray(comps.nonmated_similarity, dtype=np.float64)
    support = edc_engine.fmr_support(nonmated, fmr)
    spread = None
    if nonmated_fold is not None and nonmated_fold.size:
        folds, which = np.unique(nonmated_fold, return_inverse=True)
        hits = np.bincount(which, weights=nonmated >= np.float64(curve.threshold), minlength=folds.size)
        rates = hits / np.bincount(which, minlength=folds.size)
        spread = [float(rates.min()), float(rates.max())]
    record = {"fmr": support.fmr, "n_nonmated": support.n_nonmated, "n_false_matches": support.n_false_matches,
              "realised_fmr": support.realised_fmr, "nominal": support.nominal, "fold_realised_fmr": spread}
    recomputed = curve if curve.variant == "recomputed-threshold" else edc_engine.edc_recomputed(
        comps.mated_similarity, comps.mated_quality, nonmated, comps.nonmated_quality, fmr)
    auc = edc_engine.trapezoid_auc(recomputed)
    points = edc_engine.evf_curves(comps.mated_similarity, comps.mated_quality, nonmated, EVF_FMRS, EVF_DISCARDS)
    thresholds = points[0].threshold  # fixed on all non-mated comparisons: the same at every discard
    false_matches = np.array([np.count_nonzero(nonmated >= t) for t in thresholds], dtype=np.int64)
    evf = pa.table({
        "discard": np.repeat(np.asarray(EVF_DISCARDS, dtype=np.float64), len(EVF_FMRS)),
        "fmr": np.concatenate([p.fmr for p in points]),
        "fnmr": np.concatenate([p.fnmr for p in points]),
        "threshold": np.concatenate([p.threshold for p in points]),
        "n_false_matches": np.tile(false_matches, len(EVF_DISCARDS)),
    })
    return CurveExtras(record, auc if np.isfinite(auc) else None, evf)


@dataclass
class Prepared:
    """A resolved cell with its shared work done: crops and embeddings of the images it compares."""

    cell: Cell
    needed: np.ndarray  # images the protocol compares
    scored: np.ndarray  # of those, the readable ones (unreadable are dropped only with --skip-bad)
    usable: np.ndarray  # bool per dataset image
    fr_crops: CropStore
    method_crops: CropStore
    embeddings: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def prepare(cell: Cell) -> Prepared:
    """Align and embed the cell's images (cached: a second call only checks the caches)."""
    cfg, ds, fr = cell.cfg, cell.dataset, cell.fr
    cache = paths.cache_dir(cfg.cache)
    needed = cell.protocol.used_images()
    timings: dict[str, float] = {}
    fr_crops = CropStore(ds, fr.domain, cache, skip_bad=cfg.skip_bad)
    t0 = time.perf_counter()
    fr_crops.ensure(needed, progress=cfg.progress)
    timings["align"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    embeddings = embed_dataset(fr, fr_crops, needed, batch_size=max(cfg.batch_size, 16), progress=cfg.progress)
    timings["embed"] = time.perf_counter() - t0
    usable = fr_crops.status() != UNREADABLE
    method_crops = fr_crops
    if cell.method is not None:
        domain = cell.method.domain(cell.qfr)
        if domain != fr.domain:
            method_crops = CropStore(ds, domain, cache, skip_bad=cfg.skip_bad)
    return Prepared(cell, needed, needed[usable[needed]], usable, fr_crops, method_crops, embeddings, timings)


def stage_timings(own: dict[str, float], elsewhere: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The run record's ``timings``: per stage the run used, ``{"seconds", "shared"}``.

    ``own``: the seconds each stage took in this run. ``elsewhere``: stages done for it by other
    tasks of a plan (its shared preparation: ``"shared": true`` and how many ``"cells"`` used it;
    score ranges in workers: ``"workers"``); their seconds are added to this run's own for the
    stage (a cache check, also kept as ``"in_run"``), so a plan's cell records what its alignment
    really cost, not the 0.07 s of finding it cached.
    """
    out: dict[str, dict[str, Any]] = {stage: {"seconds": seconds, "shared": False} for stage, seconds in own.items()}
    for stage, cost in (elsewhere or {}).items():
        mine = own.get(stage, 0.0)
        out[stage] = {**cost, "seconds": cost["seconds"] + mine, "in_run": mine}
    return out


def run(cfg: RunConfig, elsewhere: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run one (method, FR model, dataset) evaluation and append its results; returns the run record.

    ``elsewhere``: the cost of stages other tasks did for this cell (see :func:`stage_timings`).
    """
    cell = resolve_cell(cfg)
    prep = prepare(cell)
    timings = prep.timings
    fr, protocol, needed, usable, fr_crops, embeddings = (cell.fr, cell.protocol, prep.needed, prep.usable,
                                                          prep.fr_crops, prep.embeddings)
    native, score_meta = score_cell(cell, prep.scored, prep.method_crops, fr_crops.digests(prep.scored),
                                    lambda: embeddings, timings)
    # The score file's own orientation wins: imported scores may override the card's.
    higher = score_meta.get("higher_is_better", str(cell.method_card.get("higher_is_better")))
    quality = native if higher == "True" else -native

    keep = usable[protocol.a] & usable[protocol.b] if protocol.templates is None else np.ones(len(protocol), bool)
    protocol = PairProtocol(protocol.a[keep], protocol.b[keep], protocol.mated[keep],
                            None if protocol.fold is None else protocol.fold[keep], protocol.templates)
    t0 = time.perf_counter()
    comps = compare(protocol, embeddings, np.nan_to_num(quality, nan=-np.inf), cfg.quality_rule, cfg.template_rule)
    timings["compare"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    curve = edc_engine.compute_edc(cfg.edc_variant, comps.mated_similarity, comps.mated_quality,
                                   comps.nonmated_similarity, comps.nonmated_quality, cfg.fmr)
    paucs = {float(d): edc_engine.pauc(curve, d) for d in cfg.discards}
    nonmated_fold = None if protocol.fold is None else protocol.fold[~protocol.mated]
    extras = curve_extras(comps, nonmated_fold, cfg.fmr, curve)
    timings["edc"] = time.perf_counter() - t0

    run_id = _run_id(cfg)
    results = Path(cfg.results)
    t0 = time.perf_counter()
    boot = _bootstrap(cell, protocol, comps, results / "runs", run_id)
    timings["bootstrap"] = time.perf_counter() - t0
    ident = identity(cell)
    counts = {"n_mated": int(len(comps.mated_similarity)), "n_nonmated": int(len(comps.nonmated_similarity))}
    # The curve file carries the cell's identity too, so a curve is never read as another cell's.
    curve_table = pa.table({"discard_fraction": curve.discard_fraction, "fnmr": curve.fnmr})
    metadata = {k: str(v) for k, v in {**ident, **counts, "run_id": run_id}.items()}
    for name, table in ((f"{run_id}.parquet", curve_table), (f"{run_id}.evf.parquet", extras.evf)):
        with atomic_path(results / "curves" / name) as tmp:
            pq.write_table(table.replace_schema_metadata(metadata), tmp)
    record: dict[str, Any] = {
        "run_id": run_id, **ident, "threshold": float(curve.threshold), "fnmr_at_0": float(curve.fnmr[0]), **counts,
        "n_images": int(len(needed)), "folds_selected": cfg.folds, "pauc": {str(k): v for k, v in paucs.items()},
        "fmr_support": extras.fmr_support, "author_scripts_auc": extras.author_scripts_auc,
        "seconds_per_image_mean": float(score_meta.get("seconds_per_image_mean", "nan")),
        "seconds_per_image_std": float(score_meta.get("seconds_per_image_std", "nan")),
        "score_file": cell.score_file.relative_to(results).as_posix(),  # portable: no machine path in a record
        "score_provenance": score_meta, "fr_provenance": fr.provenance(),
        "timings": stage_timings(timings, elsewhere), "flagged": fr_crops.flagged(needed), **base_metadata(cfg.device),
        "software": software_versions(),
        "data": data_hashes([cell.dataset.image_ids[i] for i in needed], fr_crops.digest_bytes(needed), cell.protocol),
    }
    if "runtime_breakdown" in score_meta:
        record["runtime_breakdown"] = json.loads(score_meta["runtime_breakdown"])
    record["bootstrap"] = boot
    atomic_write_text(results / "runs" / f"{run_id}.json", json.dumps(record, indent=1, sort_keys=True, default=str))
    clear_not_run(results, cfg)
    _append_rows(results, {**ident, **counts, "run_id": run_id}, paucs, edc_engine.pauc_undefined_reason(curve), boot)
    return record


def _append_rows(results: Path, fields: dict[str, Any], paucs: dict[float, float], undefined: str,
                 boot: dict[str, Any] | None) -> None:
    """Append one pauc.csv row per discard. An ``undefined`` pAUC is written empty with that
    reason in ``pauc_note`` and said on stderr: a nan is never read back as a number."""
    if undefined:
        print(f"warning: {fields['method']} / {fields['fr']} / {fields['dataset']}: pAUC undefined: {undefined}; "
              f"written to {results / 'pauc.csv'} as undefined", file=sys.stderr)
    rows = []
    for d, v in paucs.items():
        lo, hi = boot.get("interval", {}).get(repr(d), ("", "")) if boot else ("", "")
        row = {**fields, "discard": d, "pauc": "" if undefined else repr(v), "pauc_lo": _text(lo), "pauc_hi": _text(hi),
               "pauc_note": undefined}
        rows.append([row[c] for c in PAUC_COLUMNS])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    append_text(results / "pauc.csv", buf.getvalue(), header=",".join(PAUC_COLUMNS) + "\n", migrate=add_pauc_note_column)
