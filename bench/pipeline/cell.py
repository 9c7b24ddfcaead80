"""A cell — one (method, FR model, dataset) evaluation with all its settings — resolved before any work.

:func:`resolve_cell` settles everything that can fail cheaply — the dataset and its files, the
device, every option, every weight file, the quality FR model — before any image is aligned,
and records a failure in ``runs/not_run.json``. :func:`identity` is what makes two pAUC rows
the same cell (:data:`bench.results.table.IDENTITY`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core import paths, registry
from bench.core.cards import Card, get_card
from bench.core.errors import BenchError, DataError, MissingWeightsError
from bench.core.io import atomic_write_text, sha256_file
from bench.core.records import NO_QUALITY_FR, canonical_options, format_folds
from bench.core.score_store import ScoreTable, read_score_table, score_path
from bench.datasets.base import FaceDataset
from bench.datasets.listing import check_files
from bench.datasets.protocol import PairProtocol
from bench.fr.base import FRModel
from bench.methods.base import QualityMethod
from bench.stats import edc as edc_engine
from bench.stats.bootstrap import INTERVALS

DEFAULT_DISCARDS = (0.2, 0.3)
# --quality-fr value meaning "the evaluation FR model itself", for methods whose official code
# uses another FR model inside its score (DifFIQA and FaceQAN: CosFace) when its weights are absent.
SAME_FR = "same"


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
    trust_weights: bool = False
    bootstrap: int = 1000  # replicates of the pAUC confidence interval; 0 skips it
    interval: str = "percentile"  # how the interval is read from the replicates: percentile or bca
    method_options: dict[str, Any] = field(default_factory=dict)
    fr_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Locations are fixed when the config is made: a relative cache read by a preparation
        # and by a cell after the working directory changed would be two caches (issue 28).
        for name in ("data_root", "results", "cache", "method_weights", "fr_weights", "quality_fr_weights"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, paths.absolute(value))
        # Checked here, not after the scores: a BCa request on the other EDC would fail only at the bootstrap.
        if self.interval not in INTERVALS:
            raise BenchError(f"interval {self.interval!r}: expected one of {', '.join(INTERVALS)}")
        if self.interval == "bca" and self.edc_variant != "fixed-threshold":
            raise BenchError(f"--interval bca needs the fixed-threshold EDC, not {self.edc_variant} "
                             "(its leave-one-subject-out jackknife has no recomputed-threshold form here)")


@dataclass
class Cell:
    """A run with everything resolved: what :func:`run` computes needs nothing more from the user."""

    cfg: RunConfig
    dataset: FaceDataset
    protocol: PairProtocol
    folds: str
    method_card: Card
    method_options: dict[str, Any]
    method_options_text: str
    fr_options_text: str
    fr: FRModel
    quality_fr: str
    score_file: Path
    existing: ScoreTable | None
    method: QualityMethod | None = None  # None when imported scores are used as they are
    qfr: FRModel | None = None
    weights_sha256: str = "none"  # of the method's weight file, whether it loads it now or lazily

    @property
    def imported(self) -> bool:
        return self.existing is not None and "imported_from" in self.existing.meta


def load_dataset(name: str, data_root: Path | None) -> FaceDataset:
    """Locate and parse dataset ``name`` under the data root."""
    loader = registry.create("dataset", name)
    root = paths.data_root(data_root)
    if root is None and name != "synthetic":
        raise DataError(f"dataset {name}: no data root; pass --data-root DIR or set BENCH_DATA (see datasets/{name}.toml)")
    return loader.load(Path(root) if root is not None else Path("."))


def create_fr(spec: str, weights: Path | None, device: str, options: dict[str, Any] | None = None,
              trust_weights: bool = False) -> FRModel:
    """The FR model of ``--fr``: a registered name, or ``onnx:PATH``."""
    name, _, arg = spec.partition(":")
    if name == "onnx":
        if not arg:
            raise BenchError("--fr onnx:PATH needs the path of an ONNX model")
        return registry.create("fr", "onnx", weights=Path(arg), device=device, **(options or {}))
    return registry.create("fr", spec, weights=weights, device=device, trust_weights=trust_weights, **(options or {}))


def _fr_card(spec: str) -> Card:
    return get_card("fr", spec.partition(":")[0])


def _resolve_options(card: Card, given: dict[str, Any], flag: str) -> tuple[dict[str, Any], str]:
    """Declared options of ``card`` with defaults filled, and the canonical text of the non-default ones."""
    from bench.core.options import resolve

    resolved = resolve(card, given, flag=flag)
    return resolved.values, canonical_options(resolved.non_default)


def _not_run_key(cfg: RunConfig) -> dict[str, str]:
    return {"fr": cfg.fr, "method": cfg.method, "dataset": cfg.dataset}


def record_not_run(results: Path, cfg: RunConfig, reason: str) -> None:
    """Add (or refresh) a ``runs/not_run.json`` entry saying why a cell could not be run."""
    path = results / "runs" / "not_run.json"
    entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    key = _not_run_key(cfg)
    entries = [e for e in entries if {k: e.get(k) for k in key} != key] + [{**key, "reason": reason}]
    atomic_write_text(path, json.dumps(entries, indent=1, sort_keys=True))


def clear_not_run(results: Path, cfg: RunConfig) -> None:
    path = results / "runs" / "not_run.json"
    if path.is_file():
        key = _not_run_key(cfg)
        entries = [e for e in json.loads(path.read_text(encoding="utf-8")) if {k: e.get(k) for k in key} != key]
        atomic_write_text(path, json.dumps(entries, indent=1, sort_keys=True))


def _quality_fr_label(cfg: RunConfig, card: Card) -> tuple[str, bool]:
    """The FR model inside the method's score, and whether it is the card's (official) default."""
    if not card.get("needs_fr", False):
        return NO_QUALITY_FR, False
    if cfg.quality_fr == SAME_FR:
        return cfg.fr, False
    if cfg.quality_fr:
        return cfg.quality_fr, False
    official = card.get("quality_fr")
    return (str(official), True) if official else (cfg.fr, False)


def _setup_tag(options_text: str, seed: int) -> str:
    """File-name tag of a non-default setup (options or seed); "" for the defaults."""
    if options_text == "{}" and seed == 0:
        return ""
    return "opt-" + hashlib.sha256(f"{options_text}|{seed}".encode()).hexdigest()[:10]


def resolve_cell(cfg: RunConfig, record: bool = True) -> Cell:
    """Check and load everything a run needs before any heavy work; failures go to not_run.json
    (``record`` False: nothing is written, for --dry-run)."""
    if cfg.edc_variant not in edc_engine.VARIANTS:
        raise BenchError(f"unknown --edc-variant {cfg.edc_variant!r}; known: {', '.join(edc_engine.VARIANTS)}")
    try:
        return _resolve(cfg)
    except (DataError, MissingWeightsError) as exc:
        # Reports show the cell as "not run" with this reason instead of leaving it blank.
        if record:
            record_not_run(Path(cfg.results), cfg, str(exc))
        raise


def _resolve(cfg: RunConfig) -> Cell:
    from bench.core.device import check_device

    check_device(cfg.device)
    method_card = get_card("method", cfg.method)
    method_options, method_text = _resolve_options(method_card, cfg.method_options, "--method-option")
    fr_options, fr_text = _resolve_options(_fr_card(cfg.fr), cfg.fr_options, "--fr-option")
    ds = load_dataset(cfg.dataset, cfg.data_root)
    protocol = ds.protocol.select_folds(cfg.folds, name=ds.name)
    all_folds = None if ds.protocol.fold is None else np.unique(ds.protocol.fold).tolist()
    check_files(ds)  # memoised: a plan resolves each cell up to three times
    fr = create_fr(cfg.fr, cfg.fr_weights, cfg.device, fr_options, cfg.trust_weights)

    qfr_label, official = _quality_fr_label(cfg, method_card)
    path = score_path(Path(cfg.results), cfg.method, ds.name, None if qfr_label == NO_QUALITY_FR else qfr_label,
                      _setup_tag(method_text, cfg.seed))
    existing = read_score_table(path) if path.exists() else None
    cell = Cell(cfg=cfg, dataset=ds, protocol=protocol, folds=format_folds(cfg.folds, all_folds), method_card=method_card,
                method_options=method_options, method_options_text=method_text, fr_options_text=fr_text, fr=fr,
                quality_fr=qfr_label, score_file=path, existing=existing)
    if cell.imported and not cfg.force:
        return cell
    if method_card.get("import_only"):
        reason = method_card.get("import_only_reason", "see its card")
        raise DataError(f"{cfg.method} cannot be run by the harness ({reason}) and {path} holds no imported scores; "
                        f"run the official code and load its scores with `bench import-scores --method {cfg.method} "
                        f"--dataset {cfg.dataset}{' --fr ' + qfr_label if qfr_label != NO_QUALITY_FR else ''} FILE`")
    if qfr_label not in (NO_QUALITY_FR, cfg.fr):
        try:
            cell.qfr = create_fr(qfr_label, cfg.quality_fr_weights, cfg.device, trust_weights=cfg.trust_weights)
        except MissingWeightsError as exc:
            if not official:
                raise
            raise MissingWeightsError(
                f"{cfg.method}: its official code computes quality with {qfr_label}, whose weights are missing ({exc}); "
                f"pass --quality-fr-weights for {qfr_label}, or --quality-fr {SAME_FR} to use the evaluation FR model "
                f"{cfg.fr} inside the score (the results record it)") from None
    elif qfr_label == cfg.fr:
        cell.qfr = fr
    cell.method = registry.create("method", cfg.method, weights=cfg.method_weights, device=cfg.device, seed=cfg.seed,
                                  trust_weights=cfg.trust_weights, **method_options)
    weights = cell.method.weights_file()
    cell.weights_sha256 = sha256_file(weights) if weights is not None else "none"
    return cell


def identity(cell: Cell) -> dict[str, Any]:
    """Every setting of the cell that changes its pAUC (the pauc.csv identity, less ``discard``)."""
    cfg = cell.cfg
    return {"fr": cfg.fr, "method": cfg.method, "dataset": cell.dataset.name, "edc_variant": cfg.edc_variant,
            "fmr": cfg.fmr, "folds": cell.folds, "quality_rule": cfg.quality_rule, "template_rule": cfg.template_rule,
            "quality_fr": cell.quality_fr, "method_options": cell.method_options_text, "fr_options": cell.fr_options_text,
            "seed": cfg.seed}
