"""Table builders: tidy frames in, :class:`~bench.report.model.Table` out (pure functions).

Marks follow the paper: the lowest pAUC of each dataset column is bold, and the three lowest
means are coloured green, blue, red. Both are decided on the values as printed (rounded),
so two cells that read the same are marked the same.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from bench.core.errors import DataError
from bench.report.frames import ABLATION_DATASETS, MEAN, Reasons, Replicates, add_means, reason_for
from bench.report.model import Block, Cell, HeaderCell, Table, fmt, fmt_delta, header_row
from bench.results.check import OTHER_PROTOCOL, UNDEFINED, status_counts
from bench.results.published import PAPER_DATASETS, PAPER_FR, PAPER_METHODS

PAUC_DECIMALS = 3
AVERAGE_DECIMALS = 4
MS_DECIMALS = 2
BREAKDOWN_DECIMALS = 3  # Table 8 prints 3 decimals, Table 3 two
FR_DISPLAY: dict[str, str] = {
    "adaface": "AdaFace",
    "arcface": "ArcFace",
    "cosface": "CosFace",
    "curricularface": "CurricularFace",
}
TABLE_NUMBERS: dict[float, tuple[str, str]] = {0.3: ("2", "7"), 0.2: ("5", "6")}
ABLATION_ORDER: tuple[str, ...] = ("A1", "A2", "A3", "complete")
BREAKDOWN_SYMBOLS: dict[str, str] = {
    "initialization": "t_i",
    "forward": "t_f",
    "backward": "t_b",
    "embedding": "t_fr",
    "quality": "t_q",
    "total": "sum",
}
DRIFT_COLUMNS: tuple[str, ...] = ("fr", "method", "dataset", "discard", "reproduced", "published", "delta", "status")
DRIFT_STATUSES: tuple[str, ...] = ("match", "drift", "not reproduced", "no published value", UNDEFINED)
DRIFT_DECIMALS = 4
SERFIQ_NOTE = "n/a: SER-FIQ was used to create XQLFW, so the paper does not report it there."
LOWER_BETTER = "lower is better"
COMPARE_HEADER = ("rep.", "pub.", "Δ")
# The paper timed on a GPU (RTX 3090): ratios only against runs on a GPU too.
PAPER_DEVICE_CLASS = "gpu"
RATIO_NOTE = ("reproduced / published only for runs on a GPU, as the paper's; a run on another device stands beside "
              "the published time without a ratio.")


def ordered(values: Iterable[str], canonical: Sequence[str]) -> list[str]:
    """Distinct ``values``: those in ``canonical`` in its order, then the rest sorted."""
    present = set(values)
    return [v for v in canonical if v in present] + sorted(present - set(canonical))


# Methods that bracket every table (no quality at all, perfect knowledge): last, in this order.
ANCHORS: tuple[str, ...] = ("oracle", "random")


def method_rank(method: str) -> tuple[int, int]:
    """Sort key of a printed method: the paper's in its order, then the others, the anchors last."""
    if method in PAPER_METHODS:
        return 0, PAPER_METHODS.index(method)
    if method in ANCHORS:
        return 2, ANCHORS.index(method)
    return 1, 0


def row_sequence(labels: Iterable[str], row_order: Sequence[str], row_methods: Mapping[str, str]) -> list[str]:
    """Distinct row labels in table order: by their method (:func:`method_rank`), then as
    ``row_order`` lists them, then by name. ``row_methods`` maps a label to its method (a label
    it does not know is a method's printed name)."""
    def key(label: str) -> tuple:
        where = row_order.index(label) if label in row_order else len(row_order)
        return (*method_rank(row_methods.get(label, label)), where, label)

    return sorted(set(labels), key=key)


def fmr_text(fmr: float) -> str:
    """An FMR as the paper prints it: ``1e-3``, ``1e-4``, ``0.1``."""
    if fmr >= 0.01:
        return f"{fmr:g}"
    mantissa, _, exponent = f"{fmr:e}".partition("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def fr_display(fr: str) -> str:
    """How an FR key is printed in block titles (``arcface`` -> ``ArcFace``)."""
    return FR_DISPLAY.get(fr, fr)


def table_number(discard: float, average: bool = False) -> str | None:
    """The paper's table number for a pAUC (or average) table at ``discard``, if any."""
    for known, numbers in TABLE_NUMBERS.items():
        if math.isclose(known, discard, abs_tol=1e-9):
            return numbers[1] if average else numbers[0]
    return None


def _rounded(value: float | None, decimals: int) -> float:
    return math.nan if value is None or math.isnan(value) else round(value, decimals)


def best_flags(values: Sequence[float | None], decimals: int) -> list[bool]:
    """True where the printed value is the column minimum (ties all marked)."""
    shown = [_rounded(v, decimals) for v in values]
    finite = [v for v in shown if not math.isnan(v)]
    return [bool(finite) and not math.isnan(v) and v == min(finite) for v in shown]


def top_ranks(values: Sequence[float | None], decimals: int) -> list[int | None]:
    """Rank 1..3 of the printed values (lowest first, ties share the better rank), else None."""
    shown = [_rounded(v, decimals) for v in values]
    finite = [v for v in shown if not math.isnan(v)]
    ranks = {v: 1 + sum(f < v for f in finite) for v in finite}
    return [ranks[v] if not math.isnan(v) and ranks[v] <= 3 else None for v in shown]


CellKey = tuple[str, str]


TIED_NOTE = ("bold: the lowest pAUC of its column and every method tied with it, i.e. whose paired bootstrap "
             "difference to it (same resamples, 95 % interval) includes 0.")
SIGNIFICANCE = 0.05


def tied_with_best(values: Sequence[float | None], best: Sequence[bool],
                   replicates: Sequence[Replicates | None]) -> list[bool]:
    """Per row: not itself best, but its paired bootstrap difference to a best row is not significant.

    Only rows whose replicates were drawn on the same resamples as the best row's count;
    without replicates nothing is tied.
    """
    from bench.stats.paired import paired_test

    anchors = [r for r, b in zip(replicates, best) if b and r is not None]
    tied = []
    for value, is_best, reps in zip(values, best, replicates):
        ok = (not is_best and reps is not None and value is not None and not math.isnan(value)
              and any(a.key == reps.key and paired_test(reps.values, a.values).p_value[0] >= SIGNIFICANCE
                      for a in anchors))
        tied.append(bool(ok))
    return tied


def column_marks(
    rows: Sequence[str], cols: Sequence[str], rep: Mapping[CellKey, float], decimals: int, rank_col: str | None,
    replicates: Mapping[CellKey, Replicates] | None = None,
) -> dict[CellKey, tuple[bool, int | None]]:
    """The marks of every cell: (bold, rank). The one place that decides what is "best".

    Per column the lowest printed value is bold (ties all bold), and so is every method
    tied with it by a paired bootstrap test when the cells carry replicates
    (:func:`tied_with_best`); in ``rank_col`` the three lowest are ranked 1..3 instead (the
    paper's green, blue, red).
    """
    marks: dict[CellKey, tuple[bool, int | None]] = {}
    for col in cols:
        values = [rep.get((row, col)) for row in rows]
        if col == rank_col:
            flags = [(False, r) for r in top_ranks(values, decimals)]
        else:
            best = best_flags(values, decimals)
            reps = [(replicates or {}).get((row, col)) for row in rows]
            flags = [(b or t, None) for b, t in zip(best, tied_with_best(values, best, reps), strict=True)]
        marks.update({(row, col): flag for row, flag in zip(rows, flags, strict=True)})
    return marks


def _footnote(refs: list[str] | None, text: str) -> str:
    """The marker ``[n]`` of footnote ``text`` in ``refs`` (added on first use); ``""`` without refs."""
    if not text or refs is None:
        return ""
    if text not in refs:
        refs.append(text)
    return f"[{refs.index(text) + 1}]"


def _interval(bounds: tuple[float, float] | None, decimals: int, method: str = "") -> tuple[str, str]:
    """(bootstrap interval as printed, ``[0.520, 0.580]``, or ``BCa [0.520, 0.580]`` for a BCa
    interval, hover text); empty when there is none."""
    if bounds is None or any(math.isnan(b) for b in bounds):
        return "", ""
    lo, hi = (fmt(b, decimals) for b in bounds)
    if method == "bca":
        return f"BCa [{lo}, {hi}]", f"95 % BCa bootstrap interval {lo} – {hi}"
    return f"[{lo}, {hi}]", f"95 % bootstrap interval {lo} – {hi}"


@dataclass(frozen=True)
class CellInfo:
    """What a reproduced value carries besides itself (:func:`_cell_info`).

    ``note``: how its comparisons differ from the paper's (a footnote marker); ``interval``:
    its bootstrap interval; ``replicates``: for the paired test against the best; ``sd`` and
    ``seeds``: a seeded method's spread over seeds and the per-seed values (the value is their
    mean); ``undefined``: why the pAUC is undefined (printed n/a); ``interval_method``: how the
    interval was read from the replicates (``bca`` is printed as such; else percentile).
    """

    note: str = ""
    interval: tuple[float, float] | None = None
    replicates: Replicates | None = None
    sd: float = math.nan
    seeds: str = ""
    undefined: str = ""
    interval_method: str = ""


def _grid(
    rows: Sequence[str],
    labels: Mapping[str, str],
    cols: Sequence[str],
    rep: Mapping[CellKey, float],
    decimals: int,
    rank_col: str | None,
    pub: Mapping[CellKey, float] | None = None,
    missing: Mapping[CellKey, str] | None = None,
    refs: list[str] | None = None,
    info: Mapping[CellKey, CellInfo] | None = None,
    no_delta: Collection[CellKey] = (),
    label_notes: Mapping[str, str] | None = None,
) -> tuple[tuple[Cell, ...], ...]:
    """Body rows: a label, then per column the value (bold/colour marked).

    With ``pub`` every column becomes reproduced | published | delta, and a value absent
    from ``rep`` reads "not run"; when ``missing`` knows why, the cell carries the reason and
    a marker ``[n]`` indexing ``refs`` (footnote texts in order of first use, filled in
    here). A value's ``info`` adds markers (what differs from the paper's protocol, the
    per-seed values), its interval and its replicates (ties with the best); a row's
    ``label_notes`` entry (how its configuration differs from the paper's) marks its label.
    Cells in ``no_delta`` show both values but no delta (they are not the same cell).
    """
    info = info or {}
    replicates = {k: i.replicates for k, i in info.items() if i.replicates is not None}
    marks = column_marks(rows, cols, rep, decimals, rank_col, replicates)
    body = []
    for row in rows:
        cells = [Cell(labels.get(row, row), kind="label", ref=_footnote(refs, (label_notes or {}).get(row, "")))]
        for col in cols:
            value = rep.get((row, col))
            bold, rank = marks[(row, col)]
            extra = info.get((row, col), CellInfo())
            if (row, col) not in rep:
                note = (missing or {}).get((row, col), "")
                ref = _footnote(refs, f"not run: {note}" if note else "")
                cells.append(Cell("not run" if pub is not None else "—", kind="missing", note=note, ref=ref))
            elif value is None or math.isnan(value):
                why = extra.undefined
                cells.append(Cell("n/a", kind="na", note=why, ref=_footnote(refs, f"n/a: {why}" if why else "")))
            else:
                ci, hover = _interval(extra.interval, decimals, extra.interval_method)
                spread = "" if math.isnan(extra.sd) else f" ± {fmt(extra.sd, decimals)}"
                cells.append(Cell(fmt(value, decimals) + spread, bold=bold, rank=rank,
                                  ref=_footnote(refs, extra.note) + _footnote(refs, extra.seeds),
                                  note="; ".join(t for t in (hover, extra.note, extra.seeds) if t), ci=ci))
            if pub is None:
                continue
            ref = pub.get((row, col))
            cells.append(Cell("—", kind="missing") if (row, col) not in pub
                         else Cell(fmt(ref, decimals), kind="na" if ref is None or math.isnan(ref) else "published"))
            comparable = value is not None and ref is not None and (row, col) not in no_delta
            delta = (value - ref) if comparable else math.nan
            sign = 0 if math.isnan(delta) or round(delta, decimals) == 0 else (1 if delta > 0 else -1)
            cells.append(Cell(fmt_delta(delta, decimals), kind="delta", sign=sign))
        body.append(tuple(cells))
    return tuple(body)


def _header(first: str, cols: Sequence[str], compare: bool) -> tuple[tuple[HeaderCell, ...], ...]:
    if not compare:
        return (header_row(first, *cols),)
    groups = (HeaderCell(""),) + tuple(HeaderCell(c, 3) for c in cols)
    return groups, header_row(first, *(COMPARE_HEADER * len(cols)))


def _lookup(frame: pd.DataFrame, row: str, col: str) -> dict[tuple[str, str], float]:
    return {(r, c): float(v) for r, c, v in zip(frame[row], frame[col], frame["pauc"], strict=True)}


def _mean_footnote(means: pd.DataFrame, n_cols: int) -> str:
    short = means[means["n_datasets"] < n_cols]
    text = f"{MEAN}: average over the datasets with a value ({n_cols} for every method"
    if short.empty:
        return text + ")."
    all_fr = ordered(means["fr"], PAPER_FR)
    listed = []
    for (method, n), group in sorted(short.groupby(["method", "n_datasets"]), key=lambda g: g[0]):
        frs = ordered(group["fr"], PAPER_FR)
        # Name the FR models only when the shortfall is not the same in every block.
        where = "" if frs == all_fr else f" ({', '.join(fr_display(fr) for fr in frs)})"
        listed.append(f"{method} {int(n)}{where}")
    return text + f" except {', '.join(listed)})."


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _float_or_nan(value: object) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _cell_info(frame: pd.DataFrame) -> dict[CellKey, CellInfo]:
    """Per (method, dataset) the :class:`CellInfo` of the frame's optional columns: ``note``,
    ``pauc_lo``/``pauc_hi``, ``replicates``, ``pauc_sd``, ``seeds``, ``pauc_note`` and ``interval_method``."""
    out = {}
    for row in frame.to_dict("records"):
        lo, hi = _float_or_nan(row.get("pauc_lo")), _float_or_nan(row.get("pauc_hi"))
        reps = row.get("replicates")
        out[(row["method"], row["dataset"])] = CellInfo(
            note=_text(row.get("note")), interval=None if math.isnan(lo) or math.isnan(hi) else (lo, hi),
            replicates=reps if isinstance(reps, Replicates) else None, sd=_float_or_nan(row.get("pauc_sd")),
            seeds=_text(row.get("seeds")), undefined=_text(row.get("pauc_note")),
            interval_method=_text(row.get("interval_method")))
    return out


def _unlike_means(mine: pd.DataFrame, ref: pd.DataFrame) -> set[CellKey]:
    """(method, mean) of one FR block where the reproduced and published means cover different datasets."""
    def covered(frame: pd.DataFrame) -> dict[str, set[str]]:
        cells = frame[(frame["dataset"] != MEAN) & frame["pauc"].notna()]
        return {m: set(group["dataset"]) for m, group in cells.groupby("method")}

    mine_sets, ref_sets = covered(mine), covered(ref)
    return {(m, MEAN) for m in mine_sets if m in ref_sets and mine_sets[m] != ref_sets[m]}


SEEDS_NOTE = "value ± sd: a seeded method's mean over its seeds and their standard deviation (not an interval)."
INTERVAL_NOTE = "[low, high]: the 95 % percentile bootstrap interval of the pAUC (subjects resampled)."
BCA_NOTE = ("BCa [low, high]: the 95 % bias-corrected and accelerated (Efron's BCa) bootstrap interval of the "
            "pAUC (subjects resampled; acceleration from the leave-one-subject-out jackknife).")
COMPARE_NOTE = "rep. = reproduced, pub. = published (the paper's numbers, reference data), Δ = reproduced − published."
OTHER_CONFIG_NOTE = ("Δ only for rows run as the paper ran the method; a row marked with how its configuration "
                     "differs stands beside the paper's value without a Δ.")


def pauc_table(
    frame: pd.DataFrame,
    discard: float,
    reference: pd.DataFrame | None = None,
    reasons: Reasons | None = None,
    *,
    title: str | None = None,
    caption: str | None = None,
    key: str = "pauc",
    fmr: str = "1e-3",
    label_notes: Mapping[str, str] | None = None,
    row_order: Sequence[str] = (),
    row_methods: Mapping[str, str] | None = None,
    metric: str = "pAUC",
) -> Table:
    """Tables 2/5: one block per FR model, methods as rows, datasets then ``mean`` as columns.

    ``frame`` has columns fr, method, dataset, pauc (printed names; ``mean`` rows optional:
    missing means are averaged over the datasets present; one dataset gets no mean column)
    and optionally the :func:`_cell_info` columns and ``config`` (a non-empty one says the row
    is not run as the paper ran the method: it gets no Δ). ``method`` is the row label: a
    method configuration's in an evaluation group's table, whose ``label_notes`` say how it
    differs from the paper's; rows follow the paper's method order, the anchors (oracle,
    random) last, and a method's configurations as ``row_order`` lists them (``row_methods``
    maps a label to its method, :func:`row_sequence`). With ``reference`` (published rows,
    same columns) every cell becomes reproduced | published | delta, covering the union of
    both, and cells absent from ``frame`` read "not run" (reason from ``reasons``).
    ``title``/``caption`` replace the paper's; ``fmr`` and ``metric`` (what the values are,
    e.g. ``floor-relative pAUC``) are printed in the block titles.
    """
    data = add_means(frame.assign(discard=discard))
    ref = add_means(reference.assign(discard=discard)) if reference is not None else None
    both = data if ref is None else pd.concat([data, ref], ignore_index=True)
    datasets = ordered(both.loc[both["dataset"] != MEAN, "dataset"], PAPER_DATASETS)
    cols = [*datasets, MEAN] if len(datasets) > 1 else datasets
    other_config = set(frame.loc[frame["config"] != "", "method"]) if "config" in frame.columns else set()
    blocks: list[Block] = []
    refs: list[str] = []
    partial_means = False
    for fr in ordered(both["fr"], PAPER_FR):
        rows_here = both[both["fr"] == fr]
        methods = row_sequence(rows_here["method"], row_order, row_methods or {})
        mine = data[data["fr"] == fr]
        pub = _lookup(ref[ref["fr"] == fr], "method", "dataset") if ref is not None else None
        missing = {(m, d): reason_for(reasons or {}, fr, m, d) for m in methods for d in cols}
        unlike = _unlike_means(mine, ref[ref["fr"] == fr]) if ref is not None else set()
        partial_means |= bool(unlike)
        no_delta = unlike | {(m, c) for m in other_config for c in cols}
        rows = _grid(methods, {}, cols, _lookup(mine, "method", "dataset"), PAUC_DECIMALS, MEAN, pub, missing, refs,
                     _cell_info(mine), no_delta, label_notes)
        blocks.append(Block(f"{fr_display(fr)} — {metric} @ FMR = {fmr} ({LOWER_BETTER})", rows))
    number = table_number(discard)
    cells = [c for b in blocks for r in b.rows for c in r]
    footnotes = [_mean_footnote(data[data["dataset"] == MEAN], len(datasets))] if MEAN in cols else []
    if data["pauc"].isna().any() and ((data["method"] == "SER-FIQ") & (data["dataset"] == "XQLFW")).any():
        footnotes.append(SERFIQ_NOTE)
    if "replicates" in frame.columns and frame["replicates"].map(lambda r: isinstance(r, Replicates)).any():
        footnotes.append(TIED_NOTE)
    if any(c.ci and not c.ci.startswith("BCa") for c in cells):
        footnotes.append(INTERVAL_NOTE)
    if any(c.ci.startswith("BCa") for c in cells):
        footnotes.append(BCA_NOTE)
    if "pauc_sd" in frame.columns and frame["pauc_sd"].notna().any():
        footnotes.append(SEEDS_NOTE)
    if ref is not None:
        footnotes.append(COMPARE_NOTE)
        if other_config & set(ref["method"]):
            footnotes.append(OTHER_CONFIG_NOTE)
        if partial_means:
            footnotes.append("Δ of a mean only where the reproduced mean covers the same datasets as the published "
                             "one; otherwise the two means are over different cells.")
    footnotes += [f"[{i}] {text}" for i, text in enumerate(refs, 1)]
    return Table(
        key=key,
        title=title or (f"Table {number}" if number and ref is None else f"pAUC at discard {discard:g}"),
        caption=caption or (
            f"pAUC at a discard rate of {discard:g} and FMR = 1e-3 ({LOWER_BETTER}). The best result per "
            "dataset is bold; the best mean is green, the second blue, the third red."
        ),
        header=_header("FIQA model", cols, ref is not None),
        blocks=tuple(blocks),
        align="l" + "r" * (len(cols) * (3 if ref is not None else 1)),
        footnotes=tuple(footnotes),
    )


def average_table(frame: pd.DataFrame, discard: float, reference: pd.DataFrame | None = None) -> Table:
    """Tables 6/7: per method the mean over FR models of its mean pAUC, methods as columns.

    ``frame`` has columns method, pauc and optionally n_fr; with ``reference`` (published
    method, pauc) the rows are reproduced, published and delta.
    """
    methods = ordered(
        list(frame["method"]) + (list(reference["method"]) if reference is not None else []), PAPER_METHODS
    )
    rep = {("average", m): float(v) for m, v in zip(frame["method"], frame["pauc"], strict=True)}
    ranks = dict(zip(methods, top_ranks([rep.get(("average", m)) for m in methods], AVERAGE_DECIMALS), strict=True))
    cells = [Cell("reproduced" if reference is not None else "average pAUC", kind="label")]
    for m in methods:
        value = rep.get(("average", m))
        cells.append(Cell("—", kind="missing") if value is None else Cell(fmt(value, AVERAGE_DECIMALS), rank=ranks[m]))
    rows = [tuple(cells)]
    if reference is not None:
        pub = {m: float(v) for m, v in zip(reference["method"], reference["pauc"], strict=True)}
        rows.append((Cell("published", kind="label"),
                     *(Cell(fmt(pub[m], AVERAGE_DECIMALS), kind="published") if m in pub else Cell("—", kind="missing")
                       for m in methods)))
        comparable = dict(zip(frame["method"], frame.get("comparable", [True] * len(frame)), strict=True))
        deltas = []
        for m in methods:
            value, ref = rep.get(("average", m)), pub.get(m)
            same_cells = bool(comparable.get(m, False))
            delta = value - ref if value is not None and ref is not None and same_cells else math.nan
            sign = 0 if math.isnan(delta) or round(delta, AVERAGE_DECIMALS) == 0 else (1 if delta > 0 else -1)
            deltas.append(Cell(fmt_delta(delta, AVERAGE_DECIMALS), kind="delta", sign=sign))
        rows.append((Cell("Δ", kind="label"), *deltas))
    notes = []
    if reference is not None and "comparable" in frame.columns and not frame["comparable"].all():
        notes.append("Δ only where the reproduced average covers the same FR models and datasets as the "
                     "published one; otherwise the two averages are over different cells.")
    if "n_fr" in frame.columns and (frame["n_fr"] < frame["n_fr"].max()).any():
        short = frame[frame["n_fr"] < frame["n_fr"].max()]
        notes.append("Averaged over fewer FR models: " + ", ".join(
            f"{m} {int(n)}" for m, n in zip(short["method"], short["n_fr"], strict=True)) + ".")
    number = table_number(discard, average=True)
    return Table(
        key="average",
        title=f"Table {number}" if number and reference is None else f"Average pAUC at discard {discard:g}",
        caption=(
            f"Average pAUC over all datasets and FR models at a discard rate of {discard:g}, FMR = 1e-3 "
            f"({LOWER_BETTER}): the mean over FR models of each model's mean. Best green, second blue, third red."
        ),
        header=(header_row("", *methods),),
        blocks=(Block("", tuple(rows)),),
        align="l" + "r" * len(methods),
        footnotes=tuple(notes),
    )


def _ms(mean: float, std: float, decimals: int = MS_DECIMALS) -> str:
    return f"{fmt(mean, decimals)} ± {fmt(std, decimals)}"


def device_class(device: str) -> str:
    """``gpu`` for a CUDA device description (``cuda: NVIDIA H100``), ``cpu`` for a CPU one, else ``""``."""
    text = device.strip().lower()
    return "gpu" if text.startswith("cuda") else "cpu" if text.startswith("cpu") else ""


def runtime_table(frame: pd.DataFrame, reference: pd.DataFrame | None = None) -> Table:
    """Table 3: scoring time per image (ms, mean ± std) per method, with the device.

    ``frame`` has columns method, mean_ms, std_ms, device (and optionally dataset); with
    ``reference`` (published method, mean_ms, std_ms) a published column and the ratio
    reproduced / published are added, the ratio only for runs of the paper's device class
    (:data:`PAPER_DEVICE_CLASS`): a CPU time over a GPU time measures the hardware.
    """
    methods = ordered(list(frame["method"]) + (list(reference["method"]) if reference is not None else []),
                      PAPER_METHODS)
    mine = frame.set_index("method")
    ref = reference.set_index("method") if reference is not None else None
    with_dataset = "dataset" in frame.columns
    rows = []
    other_device = False
    for m in methods:
        cells = [Cell(m, kind="label")]
        if m in mine.index:
            row = mine.loc[m]
            cells += [Cell(_ms(row["mean_ms"], row["std_ms"])), Cell(str(row["device"]), kind="text")]
            cells += [Cell(str(row["dataset"]), kind="text")] if with_dataset else []
        else:
            cells += [Cell("—", kind="missing")] * (3 if with_dataset else 2)
        if ref is not None:
            if m in ref.index:
                pub_mean = float(ref.loc[m, "mean_ms"])
                cells.append(Cell(_ms(pub_mean, float(ref.loc[m, "std_ms"])), kind="published"))
                same = m in mine.index and device_class(str(mine.loc[m, "device"])) == PAPER_DEVICE_CLASS
                ratio = float(mine.loc[m, "mean_ms"]) / pub_mean if same and pub_mean > 0 else math.nan
                cells.append(Cell("—" if math.isnan(ratio) else f"×{ratio:.2f}", kind="delta"))
                other_device = other_device or (m in mine.index and not same)
            else:
                cells += [Cell("—", kind="missing"), Cell("—", kind="delta")]
        rows.append(tuple(cells))
    head = ["FIQA model", "runtime (ms, μ ± σ)", "device"] + (["dataset"] if with_dataset else [])
    head += ["published (ms)", "reproduced / published"] if ref is not None else []
    return Table(
        key="runtime",
        title="Table 3" if reference is None else "Runtime (Table 3)",
        caption="Runtime complexity: quality-scoring time per image in ms (mean ± std), warm-up excluded.",
        header=(header_row(*head),),
        blocks=(Block("", tuple(rows)),),
        align="lrl" + ("l" if with_dataset else "") + ("rr" if ref is not None else ""),
        footnotes=("The paper timed every method over XQLFW on an Intel i9-10900KF CPU with an Nvidia RTX 3090 GPU.",
                   *([RATIO_NOTE] if other_device else [])),
    )


def ablation_table(frame: pd.DataFrame, discard: float, reference: pd.DataFrame | None = None) -> Table:
    """Table 4: DifFIQA variants (rows) on LFW, CPLFW, CALFW, XQLFW and their mean (CosFace).

    ``frame`` has columns variant, label, dataset, pauc (mean rows included); ``reference``
    the published rows, same columns, for a reproduced | published | delta view.
    """
    both = frame if reference is None else pd.concat([frame, reference], ignore_index=True)
    variants = ordered(both["variant"], ABLATION_ORDER)
    labels = dict(zip(both["variant"], both["label"], strict=True))
    cols = [*ABLATION_DATASETS, MEAN]
    pub = _lookup(reference, "variant", "dataset") if reference is not None else None
    rows = _grid(variants, labels, cols, _lookup(frame, "variant", "dataset"), PAUC_DECIMALS, None, pub)
    return Table(
        key="ablation",
        title="Table 4" if reference is None else "Ablation (Table 4)",
        caption=f"Ablation study: pAUC with CosFace at FMR = 1e-3 and a discard rate of {discard:g} ({LOWER_BETTER}).",
        header=_header("Model variant", cols, reference is not None),
        blocks=(Block("", rows),),
        align="l" + "r" * (len(cols) * (3 if reference is not None else 1)),
        footnotes=(),
    )


def breakdown_table(frame: pd.DataFrame, reference: pd.DataFrame | None = None) -> Table:
    """Table 8: DifFIQA runtime per step (ms, mean ± std) and the total.

    ``frame`` has columns step, mean_ms, std_ms (optionally device); ``reference`` the
    published steps for a published column.
    """
    steps = ordered(list(frame["step"]) + (list(reference["step"]) if reference is not None else []),
                    list(BREAKDOWN_SYMBOLS))
    mine = frame.set_index("step")
    ref = reference.set_index("step") if reference is not None else None
    rows = []
    for step in steps:
        cells = [Cell(f"{step} ({BREAKDOWN_SYMBOLS.get(step, step)})", kind="label")]
        cells.append(Cell(_ms(mine.loc[step, "mean_ms"], mine.loc[step, "std_ms"], BREAKDOWN_DECIMALS))
                     if step in mine.index else Cell("—", kind="missing"))
        if ref is not None:
            cells.append(Cell(_ms(ref.loc[step, "mean_ms"], ref.loc[step, "std_ms"], BREAKDOWN_DECIMALS), kind="published")
                         if step in ref.index else Cell("—", kind="missing"))
        rows.append(tuple(cells))
    devices = sorted(set(frame["device"])) if "device" in frame.columns else []
    notes = [f"Measured on {', '.join(devices)}."] if devices else []
    notes.append("The total is timed around the whole scoring call, so it need not equal the sum of the steps.")
    return Table(
        key="breakdown",
        title="Table 8" if reference is None else "Runtime breakdown (Table 8)",
        caption="DifFIQA runtime per step in ms (mean ± std).",
        header=(header_row("step", "runtime (ms)", *(["published (ms)"] if ref is not None else [])),),
        blocks=(Block("", tuple(rows)),),
        align="lr" + ("r" if ref is not None else ""),
        footnotes=tuple(notes),
    )


def agreement_table(frame: pd.DataFrame, fraction: float = 0.1) -> Table:
    """Rank agreement between methods (per dataset, per pair): Spearman ρ, Kendall τ-b and the
    overlap of their lowest-``fraction`` sets, from :func:`bench.report.frames.agreement_frame`."""
    blocks = []
    for dataset in ordered(frame["dataset"], PAPER_DATASETS):
        rows = tuple((Cell(f"{r.method_a} vs {r.method_b}", kind="label"), Cell(f"{r.spearman:.3f}"),
                      Cell(f"{r.kendall:.3f}"), Cell(f"{r.low_overlap:.2f}"), Cell(f"{int(r.n_images):,}"))
                     for r in frame[frame["dataset"] == dataset].itertuples(index=False))
        blocks.append(Block(dataset, rows))
    low = f"lowest {fraction:.0%}"
    return Table(
        key="agreement",
        title="Agreement between methods",
        caption=(f"Rank correlation of the methods' quality scores on the images both scored, and the overlap of "
                 f"their {low} sets (|A ∩ B| / |A|, both sets of equal size)."),
        header=(header_row("methods", "Spearman ρ", "Kendall τ", f"{low} overlap", "images"),),
        blocks=tuple(blocks),
        align="lrrrr",
        footnotes=(),
    )


COUNT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("images", "#Images"), ("identities", "#IDs"), ("mated", "Mated"), ("nonmated", "Non-mated"))
FACTOR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pose", "Pose"), ("occlusion_expression", "O-E"), ("blur_resolution_noise", "B-R-N"), ("scale", "Sc"))


def render_table1(frame: pd.DataFrame) -> Table:
    """Table 1 from the datasets frame (``bench.datasets.dataset_stats.table1_frame``).

    Columns dataset, images, identities, mated, nonmated (NA when the dataset is missing);
    optional ``published_<count>`` (a differing count shows the paper's value beside it),
    ``differs`` (text saying what differs and why, or the error for a missing dataset),
    ``status``, ``images_are_templates`` and the quality-factor columns.
    """
    missing = [c for c in ("dataset", *(c for c, _ in COUNT_COLUMNS)) if c not in frame.columns]
    if missing:
        raise DataError(f"Table 1 frame lacks column(s) {', '.join(missing)}")
    factors = [(c, h) for c, h in FACTOR_COLUMNS if c in frame.columns]
    rows, notes = [], []
    for _, row in frame.set_index("dataset").loc[ordered(frame["dataset"], PAPER_DATASETS)].iterrows():
        cells = [Cell(str(row.name), kind="label")]
        for col, _ in COUNT_COLUMNS:
            text = "—" if pd.isna(row[col]) else f"{int(row[col]):,}"
            if col == "images" and bool(row.get("images_are_templates", False)):
                text += " †"
            ref = row.get(f"published_{col}")
            if ref is not None and not pd.isna(ref) and not pd.isna(row[col]) and int(ref) != int(row[col]):
                text += f" (paper {int(ref):,})"
            cells.append(Cell(text, kind="value" if not pd.isna(row[col]) else "missing"))
        cells += [Cell(str(row[c]), kind="text") for c, _ in factors]
        rows.append(tuple(cells))
        why = row.get("differs")
        if isinstance(why, str) and why:
            notes.append(f"{row.name}: {why}")
    if frame.get("images_are_templates", pd.Series(dtype=bool)).any():
        notes.insert(0, "†: number of templates, each containing several images.")
    if factors:
        notes.append("Quality factors (the paper's subjective estimate): O-E occlusion/expression, B-R-N "
                     "blur/resolution/noise, Sc scale; L low, M medium, H high, Lr large.")
    return Table(
        key="datasets",
        title="Table 1",
        caption="Experimental datasets: images, identities and mated / non-mated comparisons.",
        header=(header_row("Dataset", *(h for _, h in COUNT_COLUMNS), *(h for _, h in factors)),),
        blocks=(Block("", tuple(rows)),),
        align="l" + "r" * len(COUNT_COLUMNS) + "c" * len(factors),
        footnotes=tuple(notes),
    )


def drift_table(frame: pd.DataFrame, show_not_reproduced: bool = False) -> Table:
    """The ``bench check`` drift table (rows in the frame's order; the counts cover all rows).

    Reproduced values and deltas get 4 decimals so a drift just past the tolerance shows.
    """
    missing = [c for c in DRIFT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"drift frame lacks column(s) {', '.join(missing)}")
    unknown = sorted(s for s in set(frame["status"]) - set(DRIFT_STATUSES) if not s.startswith(f"{OTHER_PROTOCOL} ("))
    if unknown:
        raise DataError(f"drift frame: unknown status {', '.join(map(repr, unknown))} (known: {', '.join(DRIFT_STATUSES)})")
    shown = frame if show_not_reproduced else frame[frame["status"] != "not reproduced"]
    rows = []
    for r in shown.itertuples(index=False):
        reproduced = _as_float(r.reproduced)
        rows.append((
            Cell(str(r.fr), kind="label"), Cell(str(r.method), kind="text"), Cell(str(r.dataset), kind="text"),
            Cell(f"{float(r.discard):g}"),
            Cell(_drift_value(reproduced, getattr(r, "note", ""))),
            Cell("" if r.status.startswith(OTHER_PROTOCOL) else fmt(_as_float(r.published), PAUC_DECIMALS)),
            Cell(fmt_delta(_as_float(r.delta), DRIFT_DECIMALS)),
            Cell(str(r.status), kind="text", bold=r.status == "drift"),
        ))
    counts = status_counts(frame)
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in (*DRIFT_STATUSES, OTHER_PROTOCOL))
    hidden = "" if show_not_reproduced else " Cells not reproduced are counted but not listed."
    return Table(
        key="drift",
        title="Drift against the published numbers",
        caption=f"{len(frame)} cells: {summary}.{hidden}",
        header=(header_row(*DRIFT_COLUMNS),),
        blocks=(Block("", tuple(rows)),),
        align="lllrrrrl",
    )


def _drift_value(reproduced: float, undefined: str) -> str:
    """A reproduced pAUC in the drift table: ``n/a (why)`` when undefined, ``—`` when absent."""
    if undefined:
        return f"n/a ({undefined})"
    return "—" if math.isnan(reproduced) else fmt(reproduced, DRIFT_DECIMALS)


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
