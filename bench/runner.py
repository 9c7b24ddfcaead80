"""``bench run``: scores + embeddings + protocol → EDC → pAUC rows, curve points, run metadata.

Every stage is cached on disk (crops and embeddings in the cache folder, scores in the
results folder), so an interrupted run resumes and a repeated run only recomputes the EDC.
``force`` recomputes the scores (crops and embeddings are keyed by content and reused).
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import edc as edc_engine
from bench import paths, registry
from bench.compare import compare
from bench.crops import CropStore
from bench.datasets.base import FaceDataset
from bench.embeddings import embed_dataset
from bench.errors import BenchError, DataError, MissingWeightsError
from bench.fr.base import FRModel
from bench.io import append_text, atomic_path, atomic_write_text
from bench.methods.base import QualityMethod, ScoreContext
from bench.protocol import PairProtocol
from bench.results import PAUC_COLUMNS
from bench.provenance import base_metadata
from bench.score_store import read_scores, score_path, scores_for, write_scores

DEFAULT_DISCARDS = (0.2, 0.3)


@dataclass
class RunConfig:
    """Everything ``bench run`` needs; defaults are the paper's conventions."""

    method: str
    fr: str
    dataset: str
    data_root: Path | None = None
    results: Path = paths.DEFAULT_RESULTS
    cache: Path | None = None
    method_weights: Path | None = None
    fr_weights: Path | None = None
    quality_fr: str | None = None
    quality_fr_weights: Path | None = None
    device: str = "cpu"
    edc_variant: str = "fixed-threshold"
    fmr: float = 1e-3
    discards: tuple[float, ...] = DEFAULT_DISCARDS
    folds: list[int] | None = None
    force: bool = False
    seed: int = 0
    batch_size: int = 32
    skip_bad: bool = False
    quality_rule: str = "min"
    template_rule: str = "min"
    progress: bool = True
    method_options: dict[str, Any] = field(default_factory=dict)
    fr_options: dict[str, Any] = field(default_factory=dict)


def load_dataset(name: str, data_root: Path | None) -> FaceDataset:
    """Locate and parse dataset ``name`` under the data root."""
    loader = registry.create("dataset", name)
    root = paths.data_root(data_root)
    if root is None and name != "synthetic":
        raise DataError(f"dataset {name}: no data root; pass --data-root DIR or set BENCH_DATA (see datasets/{name}.toml)")
    return loader.load(Path(root) if root is not None else Path("."))


def create_fr(spec: str, weights: Path | None, device: str, options: dict[str, Any] | None = None) -> FRModel:
    """The FR model of ``--fr``: a registered name, or ``onnx:PATH``."""
    name, _, arg = spec.partition(":")
    if name == "onnx":
        if not arg:
            raise BenchError("--fr onnx:PATH needs the path of an ONNX model")
        return registry.create("fr", "onnx", weights=Path(arg), device=device, **(options or {}))
    return registry.create("fr", spec, weights=weights, device=device, **(options or {}))


def _fr_label(cfg: RunConfig) -> str:
    """The FR model a method's scores depend on: ``--quality-fr``, else the evaluation FR."""
    return cfg.quality_fr or cfg.fr


def record_not_run(results: Path, cfg: RunConfig, reason: str) -> None:
    """Add (or refresh) a ``runs/not_run.json`` entry saying why a cell could not be run."""
    path = results / "runs" / "not_run.json"
    entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    key = {"fr": cfg.fr, "method": cfg.method, "dataset": cfg.dataset}
    entries = [e for e in entries if {k: e.get(k) for k in key} != key] + [{**key, "reason": reason}]
    atomic_write_text(path, json.dumps(entries, indent=1, sort_keys=True))


def _clear_not_run(results: Path, cfg: RunConfig) -> None:
    path = results / "runs" / "not_run.json"
    if path.is_file():
        key = {"fr": cfg.fr, "method": cfg.method, "dataset": cfg.dataset}
        entries = [e for e in json.loads(path.read_text(encoding="utf-8")) if {k: e.get(k) for k in key} != key]
        atomic_write_text(path, json.dumps(entries, indent=1, sort_keys=True))


def _options_text(cfg: RunConfig) -> str:
    """Method options as canonical JSON: part of what a reusable score file must match."""
    return json.dumps(cfg.method_options, sort_keys=True)


def _git_free_id(cfg: RunConfig) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{stamp}-{cfg.method}-{paths.safe_name(cfg.fr)[:40]}-{cfg.dataset}-{uuid.uuid4().hex[:6]}"


def _score(method: QualityMethod, cfg: RunConfig, ds: FaceDataset, fr: FRModel | None, needed: np.ndarray,
           crops: CropStore, embeddings: Any, timings: dict[str, float]) -> tuple[Path, np.ndarray, dict[str, str]]:
    """Reuse or compute the score file; returns (path, native scores per image, metadata)."""
    path = score_path(cfg.results, method.name, ds.name, _fr_label(cfg) if method.needs_fr else None)
    if path.exists() and not cfg.force:
        ids, _, meta = read_scores(path)
        have = set(ids)
        same_setup = (meta.get("method_version") == str(method.card.get("version")) and meta.get("seed") == str(cfg.seed)
                      and meta.get("method_options") == _options_text(cfg))
        if same_setup and all(ds.image_ids[i] in have for i in needed):
            return path, scores_for(path, ds.image_ids, needed), meta
    ctx = ScoreContext(dataset=ds, fr=fr, crops=crops, device=cfg.device, seed=cfg.seed, batch_size=cfg.batch_size,
                       cache_dir=paths.cache_dir(cfg.cache), embeddings=embeddings, progress=cfg.progress)
    t0 = time.perf_counter()
    result = method.score_dataset(needed, ctx)
    timings["score"] = time.perf_counter() - t0
    spi = np.asarray(result.seconds_per_image, dtype=np.float64)
    meta: dict[str, Any] = {
        "method": method.name, "method_version": method.card.get("version"),
        "higher_is_better": method.card.get("higher_is_better"), "weights_sha256": method.weights_sha256,
        "fr": _fr_label(cfg) if method.needs_fr else "none", "quality_fr_weights_sha256": fr.weights_sha256 if fr else "none", "dataset": ds.name, **base_metadata(cfg.device),
        "seconds_per_image_mean": float(spi.mean()) if spi.size else float("nan"),
        "seconds_per_image_std": float(spi.std()) if spi.size else float("nan"),
        "n_timed_batches": int(spi.size), "seed": cfg.seed, "method_options": _options_text(cfg),
    }
    for key, value in result.extra.items():
        meta[key] = json.dumps(value)
    write_scores(path, [ds.image_ids[i] for i in needed], result.scores, meta)
    return path, scores_for(path, ds.image_ids, needed), {k: str(v) for k, v in meta.items()}


def run(cfg: RunConfig) -> dict[str, Any]:
    """Run one (method, FR model, dataset) evaluation and append its results; returns the run record."""
    if cfg.edc_variant not in edc_engine.VARIANTS:
        raise BenchError(f"unknown --edc-variant {cfg.edc_variant!r}; known: {', '.join(edc_engine.VARIANTS)}")
    timings: dict[str, float] = {}
    try:
        ds = load_dataset(cfg.dataset, cfg.data_root)
        ds.check_files()
        fr = create_fr(cfg.fr, cfg.fr_weights, cfg.device, cfg.fr_options)
        method: QualityMethod = registry.create("method", cfg.method, weights=cfg.method_weights, device=cfg.device,
                                                seed=cfg.seed, **cfg.method_options)
    except (DataError, MissingWeightsError) as exc:
        # Reports show the cell as "not run" with this reason instead of leaving it blank.
        record_not_run(Path(cfg.results), cfg, str(exc))
        raise
    protocol = ds.protocol.select_folds(cfg.folds)
    cache = paths.cache_dir(cfg.cache)
    needed = protocol.used_images()

    fr_crops = CropStore(ds, fr.domain, cache, skip_bad=cfg.skip_bad)
    t0 = time.perf_counter()
    fr_crops.ensure(needed, progress=cfg.progress)
    timings["align"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    embeddings = embed_dataset(fr, fr_crops, needed, batch_size=max(cfg.batch_size, 16), progress=cfg.progress)
    timings["embed"] = time.perf_counter() - t0

    # A method may use its own FR model (e.g. FaceQAN needs a differentiable one) while the
    # evaluation embeddings come from --fr, as in the paper where DifFIQA uses CosFace throughout.
    qfr = fr
    if method.needs_fr and cfg.quality_fr and cfg.quality_fr != cfg.fr:
        qfr = create_fr(cfg.quality_fr, cfg.quality_fr_weights, cfg.device)
    domain = method.domain(qfr)
    method_crops = fr_crops if domain == fr.domain else CropStore(ds, domain, cache, skip_bad=cfg.skip_bad)
    score_file, native, score_meta = _score(method, cfg, ds, qfr if method.needs_fr else None, needed, method_crops,
                                            lambda: embeddings, timings)
    # The score file's own orientation wins: imported scores may override the card's.
    higher = score_meta.get("higher_is_better", str(method.card.get("higher_is_better")))
    quality = native if higher == "True" else -native

    # Images skipped as unreadable (only with --skip-bad) drop out with their comparisons.
    status = fr_crops.status()
    usable = status != 3
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
    timings["edc"] = time.perf_counter() - t0

    run_id = _git_free_id(cfg)
    results = Path(cfg.results)
    curve_frame = pd.DataFrame({"discard_fraction": curve.discard_fraction, "fnmr": curve.fnmr})
    with atomic_path(results / "curves" / f"{run_id}.parquet") as tmp:
        curve_frame.to_parquet(tmp, index=False)
    record: dict[str, Any] = {
        "run_id": run_id, "method": method.name, "fr": cfg.fr, "quality_fr": _fr_label(cfg) if method.needs_fr else None, "dataset": ds.name, "edc_variant": cfg.edc_variant,
        "fmr": cfg.fmr, "threshold": float(curve.threshold), "fnmr_at_0": float(curve.fnmr[0]),
        "n_mated": int(len(comps.mated_similarity)), "n_nonmated": int(len(comps.nonmated_similarity)),
        "n_images": int(len(needed)), "folds": cfg.folds, "pauc": {str(k): v for k, v in paucs.items()},
        "seconds_per_image_mean": float(score_meta.get("seconds_per_image_mean", "nan")),
        "seconds_per_image_std": float(score_meta.get("seconds_per_image_std", "nan")),
        "score_file": str(score_file), "score_provenance": score_meta, "fr_provenance": fr.provenance(),
        "quality_rule": cfg.quality_rule, "template_rule": cfg.template_rule,
        "timings": timings, "flagged": fr_crops.flagged(needed), **base_metadata(cfg.device),
    }
    if "runtime_breakdown" in score_meta:
        record["runtime_breakdown"] = json.loads(score_meta["runtime_breakdown"])
    atomic_write_text(results / "runs" / f"{run_id}.json", json.dumps(record, indent=1, sort_keys=True, default=str))
    _clear_not_run(results, cfg)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        (d, cfg.fr, method.name, ds.name, repr(v), cfg.edc_variant, run_id) for d, v in paucs.items())
    append_text(results / "pauc.csv", buf.getvalue(), header=",".join(PAUC_COLUMNS) + "\n")
    return record
