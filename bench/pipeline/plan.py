"""Plans: a whole evaluation (a grid of cells with per-method settings) as one TOML file.

A plan file::

    [plan]
    description = "..."

    [settings]                  # RunConfig conventions shared by every cell
    folds = [1, 2]              # or "all"
    discards = [0.2, 0.3]       # also: edc_variant, fmr, quality_rule, template_rule, seed, batch_size, interval

    [methods.diffiqa]           # per-method settings (all optional)
    quality_fr = "cosface"      # the FR model inside the score, as the method's official code uses
    options = { t = 5 }         # method options (the card's [options])
    ms_per_image = 1074.62      # scoring cost prior, only for ordering cheap cells first

    [[grid]]                    # every (method, fr, dataset) of the lists is a cell
    name = "table2"
    methods = ["diffiqa", ...]
    fr = ["arcface", ...]
    datasets = ["lfw", ...]     # "all": every registered real dataset
    [[grid.exclude]]            # cells the table leaves out on purpose, listed with the reason
    method = "ser-fiq"
    dataset = "xqlfw"
    reason = "..."

:func:`expand` turns a plan into :class:`PlanCell` s, one per distinct configuration (a cell
named by several grids is one cell carrying every grid's name), cheap cells first.
:func:`validate` resolves the cells one by one (:func:`bench.pipeline.cell.resolve_cell`, which records the
cells that cannot run in ``runs/not_run.json``), and :func:`estimate` says, read-only, how
many of a cell's images still need aligning, embedding and scoring.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cards import get_card, load_cards
from bench.core.errors import BenchError
from bench.pipeline.cell import Cell, RunConfig, resolve_cell

ALL = "all"
# Settings a plan may fix for all its cells (RunConfig fields holding conventions, not locations).
SETTINGS = ("folds", "discards", "edc_variant", "fmr", "quality_rule", "template_rule", "seed", "batch_size",
            "interval")
METHOD_KEYS = ("quality_fr", "options", "ms_per_image")
GRID_KEYS = ("name", "methods", "fr", "datasets", "exclude")
# FR models "all" leaves out: the test model, the ONNX loader (needs a path), and dlib-native,
# the same model as dlib computed 10x slower (its reference computation, not another model).
NOT_IN_ALL_FR = ("synthetic", "onnx", "dlib-native")
# Ordering prior for a method without ms_per_image: cheap, but after the free mock methods.
DEFAULT_MS_PER_IMAGE = 1.0
# Rough per-image costs of the shared stages (CPU, ms), for the estimate only.
ALIGN_MS, EMBED_MS = 30.0, 40.0


class PlanError(BenchError):
    """A plan file (or a list given on the command line) is malformed."""


@dataclass(frozen=True)
class MethodSettings:
    """A plan's settings of one method."""

    quality_fr: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    ms_per_image: float = DEFAULT_MS_PER_IMAGE


@dataclass(frozen=True)
class Grid:
    """Every (method, FR model, dataset) of three lists, less the excluded ones."""

    name: str
    methods: tuple[str, ...]
    fr: tuple[str, ...]
    datasets: tuple[str, ...]
    exclude: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class Plan:
    """A parsed plan file (or the lists of ``bench run --method a,b``)."""

    source: str
    description: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, MethodSettings] = field(default_factory=dict)
    grids: tuple[Grid, ...] = ()


@dataclass
class PlanCell:
    """One configuration to run, the grids (tables) that ask for it, and why it is skipped if it is."""

    cfg: RunConfig
    grids: tuple[str, ...]
    ms_per_image: float = DEFAULT_MS_PER_IMAGE
    excluded: str | None = None  # the plan leaves this cell out (reason)
    reason: str | None = None  # set by validate(): why it cannot run here

    @property
    def label(self) -> str:
        return f"{self.cfg.method} / {self.cfg.fr} / {self.cfg.dataset}"


@dataclass(frozen=True)
class Estimate:
    """What a cell still costs: images to align, embed and score (of ``images``), and a time guess."""

    images: int
    align: int
    embed: int
    score: int
    seconds: float
    note: str = ""

    def text(self) -> str:
        extra = f"; {self.note}" if self.note else ""
        return (f"{self.images} images: align {self.align}, embed {self.embed}, score {self.score} to do "
                f"(~{_duration(self.seconds)} on CPU){extra}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def registered_real_datasets() -> list[str]:
    """Every registered dataset except the in-memory ``synthetic`` one (what ``--dataset all`` means)."""
    return [name for name in load_cards("dataset") if name != "synthetic"]


def _names(kind: str, given: Any, where: str) -> tuple[str, ...]:
    """A list of registered names (``"all"`` expanded), each checked against its cards."""
    items = given.split(",") if isinstance(given, str) else given
    if not isinstance(items, list) or not items or not all(isinstance(x, str) and x.strip() for x in items):
        raise PlanError(f"{where}: expected a non-empty list of names (or \"all\"), got {given!r}")
    out: list[str] = []
    for item in (x.strip() for x in items):
        if item == ALL:
            if kind == "dataset":
                out += registered_real_datasets()
            elif kind == "fr":
                out += [n for n in load_cards("fr") if n not in NOT_IN_ALL_FR]
            else:
                out += list(load_cards("method"))
            continue
        if not (kind == "fr" and item.startswith("onnx:")):
            get_card(kind, item)  # type: ignore[arg-type]  # unknown names fail here, with a did-you-mean
        out.append(item)
    return tuple(dict.fromkeys(out))


def from_lists(methods: str, fr: str, datasets: str) -> Plan:
    """The plan of ``bench run --method a,b --fr x --dataset all``: one grid, no per-method settings."""
    grid = Grid("cli", _names("method", methods, "--method"), _names("fr", fr, "--fr"),
                _names("dataset", datasets, "--dataset"))
    return Plan(source="command line", grids=(grid,))


def _unknown(keys: Any, known: tuple[str, ...], where: str) -> None:
    extra = sorted(set(keys) - set(known))
    if extra:
        raise PlanError(f"{where}: unknown key(s) {', '.join(extra)}; known: {', '.join(known)}")


_SETTING_TYPES: dict[str, tuple[type, ...]] = {"edc_variant": (str,), "fmr": (float, int), "quality_rule": (str,),
                                               "template_rule": (str,), "seed": (int,), "batch_size": (int,), "interval": (str,)}


def _settings(settings: dict[str, Any], where: str) -> dict[str, Any]:
    """The [settings] table checked: known keys of the right types; folds = "all" means every fold."""
    _unknown(settings, SETTINGS, where)
    for key, types in _SETTING_TYPES.items():
        if key in settings and (not isinstance(settings[key], types) or isinstance(settings[key], bool)):
            raise PlanError(f"{where}: {key} = {settings[key]!r} has the wrong type (expected {types[0].__name__})")
    folds = settings.get("folds")
    if folds == ALL:
        settings["folds"] = None
    elif folds is not None and not (isinstance(folds, list) and folds and all(type(f) is int for f in folds)):
        raise PlanError(f"{where}: folds = {folds!r}: expected a list of fold numbers, e.g. [1, 2], or \"all\"")
    discards = settings.get("discards")
    if discards is not None:
        if not (isinstance(discards, list) and discards and all(isinstance(d, (int, float)) and 0 < d <= 1
                                                                for d in discards)):
            raise PlanError(f"{where}: discards = {discards!r}: expected a list of limits in (0, 1], e.g. [0.2, 0.3]")
        settings["discards"] = tuple(float(d) for d in discards)
    return settings


def load_plan(path: Path) -> Plan:
    """Parse and check a plan file (names against the cards; every key known). A bare name
    that is no file (``diffiqa_ijcb2023``) is a plan shipped in ``plans/``."""
    from bench.core import resources

    path = Path(path)
    shipped = resources.folder("plans") / f"{path.name.removesuffix('.toml')}.toml"
    if not path.exists() and path.parent == Path(".") and shipped.is_file():
        path = shipped
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"--plan {path}: no such file; see plans/ for examples") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path}: not valid TOML ({exc})") from None
    _unknown(data, ("plan", "settings", "methods", "grid"), str(path))
    settings = _settings(dict(data.get("settings", {})), f"{path} [settings]")
    methods: dict[str, MethodSettings] = {}
    for name, entry in data.get("methods", {}).items():
        where = f"{path} [methods.{name}]"
        get_card("method", name)
        _unknown(entry, METHOD_KEYS, where)
        options = entry.get("options", {})
        if not isinstance(options, dict):
            raise PlanError(f"{where}: options must be a table, e.g. options = {{ t = 20 }}")
        methods[name] = MethodSettings(entry.get("quality_fr"), dict(options),
                                       float(entry.get("ms_per_image", DEFAULT_MS_PER_IMAGE)))
    grids = []
    for k, entry in enumerate(data.get("grid", [])):
        where = f"{path} [[grid]] #{k + 1}"
        _unknown(entry, GRID_KEYS, where)
        missing = [key for key in ("methods", "fr", "datasets") if key not in entry]
        if missing:
            raise PlanError(f"{where}: missing {', '.join(missing)}")
        exclude = tuple(entry.get("exclude", ()))
        for ex in exclude:
            _unknown(ex, ("method", "fr", "dataset", "reason"), f"{where} exclude")
            if not ex.get("reason"):
                raise PlanError(f"{where} exclude {ex}: say why the cell is left out (reason = \"...\")")
        grids.append(Grid(str(entry.get("name", f"grid{k + 1}")), _names("method", entry["methods"], f"{where} methods"),
                          _names("fr", entry["fr"], f"{where} fr"), _names("dataset", entry["datasets"], f"{where} datasets"),
                          exclude))
    if not grids:
        raise PlanError(f"{path}: no [[grid]] of cells")
    plan = data.get("plan", {})
    return Plan(source=str(path), description=str(plan.get("description", "")), settings=settings, methods=methods,
                grids=tuple(grids))


def _excluded(grid: Grid, method: str, fr: str, dataset: str) -> str | None:
    cell = {"method": method, "fr": fr, "dataset": dataset}
    for ex in grid.exclude:
        if all(ex[k] == cell[k] for k in ("method", "fr", "dataset") if k in ex):
            return str(ex["reason"])
    return None


def expand(plan: Plan, base: RunConfig, overrides: dict[str, Any] | None = None) -> list[PlanCell]:
    """The plan's cells, each a RunConfig built from ``base`` (locations, device, flags), the
    plan's settings and per-method settings, then ``overrides`` (settings given explicitly on
    the command line win over the plan). One cell per distinct configuration, cheap first."""
    overrides = overrides or {}
    cells: dict[tuple[Any, ...], PlanCell] = {}
    for grid in plan.grids:
        for method in grid.methods:
            ms = plan.methods.get(method, MethodSettings())
            for fr in grid.fr:
                for dataset in grid.datasets:
                    fields: dict[str, Any] = {**plan.settings, "method": method, "fr": fr, "dataset": dataset,
                                              "quality_fr": ms.quality_fr or base.quality_fr,
                                              "method_options": {**ms.options, **base.method_options}}
                    cfg = replace(base, **{**fields, **overrides})
                    key = (method, fr, dataset, cfg.quality_fr, repr(sorted(cfg.method_options.items())), cfg.seed)
                    excluded = _excluded(grid, method, fr, dataset)
                    if key not in cells:
                        cells[key] = PlanCell(cfg, (grid.name,), ms.ms_per_image, excluded)
                        continue
                    known = cells[key]
                    known.grids += (grid.name,)
                    # A cell one table leaves out but another asks for is run.
                    known.excluded = known.excluded if excluded else None
    return order(list(cells.values()))


def order(cells: list[PlanCell]) -> list[PlanCell]:
    """Cheap cells first (scoring cost prior, then dataset and FR model so shared work clusters;
    ties keep the plan's order); a partial run is then already useful."""
    return sorted(cells, key=lambda c: (c.ms_per_image, c.cfg.dataset, c.cfg.fr))


def validate(cells: Iterable[PlanCell], record: bool = True) -> Iterator[tuple[PlanCell, Cell | None]]:
    """Resolve each non-excluded cell in turn, yielding it with its resolved Cell (None when it
    cannot run: its ``reason`` says why; resolve_cell records a missing dataset or weight file
    in runs/not_run.json unless ``record`` is False). One Cell (FR model and method loaded) is
    alive at a time."""
    for pc in cells:
        if pc.excluded:
            yield pc, None
            continue
        try:
            cell = resolve_cell(pc.cfg, record)
        except BenchError as exc:
            pc.reason = str(exc)
            card = get_card("method", pc.cfg.method)
            if card.get("import_only") and "import-scores" not in pc.reason:
                # The first failure hides that this method is never run here: say so too.
                pc.reason += (f"; and {pc.cfg.method} is import-only ({card.get('import_only_reason', 'see its card')}): "
                              f"load its scores with `bench import-scores --method {pc.cfg.method}`")
            yield pc, None
            continue
        yield pc, cell


def estimate(pc: PlanCell, cell: Cell) -> Estimate:
    """Images of the cell still to align, embed and score, read from the caches without writing.

    Crops: the crop cache's status per image; embeddings: rows whose recorded source digest
    equals the crop cache's; scores: the score file and finished checkpoint parts with the
    same setup (images whose crops are not cached yet count as to do).
    """
    from bench.core import paths
    from bench.datasets.crops import DETECTED, FALLBACK, CropStore
    from bench.pipeline.embeddings import cached_sources

    cfg = cell.cfg
    needed = cell.protocol.used_images()
    cache = paths.cache_dir(cfg.cache)
    fr_crops = CropStore(cell.dataset, cell.fr.domain, cache)
    status, sha = _crop_state(fr_crops.state_path, len(cell.dataset))
    cached = np.isin(status[needed], (DETECTED, FALLBACK))
    align = int(np.count_nonzero(~cached))
    embedded = np.zeros(len(needed), dtype=bool)
    sources = cached_sources(cell.fr, fr_crops)
    if sources is not None:
        embedded = cached & np.all(sources[needed] == sha[needed], axis=1) & np.any(sha[needed] != 0, axis=1)
    embed = int(np.count_nonzero(~embedded))
    score, note = _score_todo(cell, needed, sha, cached)
    seconds = (align * ALIGN_MS + embed * EMBED_MS + score * pc.ms_per_image) / 1000.0
    return Estimate(len(needed), align, embed, score, seconds, note)


def _crop_state(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Status and sha256 per image from a crop cache's state file (zeros when there is none)."""
    if path.is_file():
        with np.load(path) as state:
            status, sha = state["status"], state["sha256"]
        if len(status) == n and sha.shape == (n, 32):
            return status, sha
    return np.zeros(n, dtype=np.uint8), np.zeros((n, 32), dtype=np.uint8)


def _score_todo(cell: Cell, needed: np.ndarray, sha: np.ndarray, cached: np.ndarray) -> tuple[int, str]:
    """Images still to score, and a note (imported scores; a score file of another setup)."""
    from bench.pipeline.scoring import plan_scores

    if cell.imported and not cell.cfg.force:
        return 0, "imported scores"
    if cell.method is None:
        return len(needed), ""
    digests = [bytes(row).hex() if ok else "" for row, ok in zip(sha[needed], cached)]
    try:
        todo = plan_scores(cell, needed, digests).todo
    except BenchError as exc:
        return len(needed), str(exc)
    return len(todo), ""


def dry_run_lines(cells: list[PlanCell]) -> Iterator[str]:
    """One line per cell: runnable with its cost estimate, excluded, or why it cannot run; writes nothing."""
    for pc, cell in validate(cells, record=False):
        tables = ",".join(pc.grids)
        if pc.excluded:
            yield f"excluded   {pc.label} [{tables}]: {pc.excluded}"
        elif cell is None:
            yield f"not run    {pc.label} [{tables}]: {pc.reason}"
        else:
            yield f"runnable   {pc.label} [{tables}] quality_fr={cell.quality_fr}: {estimate(pc, cell).text()}"


def summary(cells: list[PlanCell]) -> str:
    """Counts of runnable, excluded and not-runnable cells (after :func:`validate`)."""
    excluded = sum(1 for pc in cells if pc.excluded)
    failed = sum(1 for pc in cells if pc.reason and not pc.excluded)
    return (f"{len(cells)} cells: {len(cells) - excluded - failed} runnable, {failed} cannot run here, "
            f"{excluded} excluded by the plan")
