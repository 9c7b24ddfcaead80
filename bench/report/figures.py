"""Figures (matplotlib, Agg): the EDC grid of Fig. 4 and the EVF grid beside it, the score
distributions of Fig. 5, the agreement heat-map and the composed image galleries (strips,
reconstruction rows).

Figures are built on ``matplotlib.figure.Figure`` (no pyplot state) under fixed rcParams
and saved without timestamps or version strings, so the same frame gives the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.core.cards import load_cards
from bench.report.tables import fr_display, ordered
from bench.results.published import PAPER_DATASETS, PAPER_FR, PAPER_METHODS
from bench.stats.edc import MIN_IMPOSTORS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from bench.report.strips import GalleryRow

RC: dict[str, object] = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "legend.fontsize": 8,
    "savefig.dpi": 100,
    "figure.dpi": 100,
    "svg.hashsalt": "fiqa-bench",
    "pdf.fonttype": 42,
    "path.simplify": False,
}
PNG_METADATA: dict[str, str | None] = {"Software": None}
PDF_METADATA: dict[str, str | None] = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}
HIST_BINS = 40
# EDC panels: at most this wide (in) and the whole grid at most EDC_MAX_IN, height = width x aspect,
# so one panel fills a page's width and Fig. 4's 4 FR models still fit one.
EDC_PANEL_IN = 8.0
EDC_MAX_IN = 12.0
EDC_ASPECT = 0.55
EDC_STYLES: tuple[str, ...] = ("-", "--", ":", "-.")
# Composed galleries: inches per tile and per label line, and their resolution (a 112 px crop ~ 1:1).
TILE_IN = 0.9
LINE_IN = 0.13
LABEL_IN = 1.9
GALLERY_DPI = 125
GALLERY_QUALITY = 90


@dataclass(frozen=True)
class Rendered:
    """A figure as PNG and PDF bytes, with its caption."""

    name: str
    title: str
    caption: str
    png: bytes
    pdf: bytes


def method_colours(methods: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """A fixed colour per method, by its position among the paper's methods, then the other
    registered methods, then the rest.

    The ten competitors take tab10; DifFIQA and DifFIQA(R) (11th, 12th) black and purple so
    the proposed methods stand out; further methods take Dark2, then tab20b's dark shades.
    """
    palette = [*matplotlib.colormaps["tab10"].colors, (0.0, 0.0, 0.0), (0.5, 0.0, 0.5),
               *matplotlib.colormaps["Dark2"].colors, *matplotlib.colormaps["tab20b"].colors[::4]]
    # Every registered method has a place, so a method keeps its colour from figure to figure.
    known = list(dict.fromkeys([*PAPER_METHODS, *sorted(c.paper_name for c in load_cards("method").values())]))
    order = ordered(list(methods) + known, known)
    return {m: tuple(palette[i % len(palette)]) for i, m in enumerate(order) if m in methods}


def _save(fig: Figure) -> tuple[bytes, bytes]:
    png, pdf = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", metadata=PNG_METADATA)
    fig.savefig(pdf, format="pdf", metadata=PDF_METADATA)
    return png.getvalue(), pdf.getvalue()


def _line_styles(labels: Sequence[str], methods: Mapping[str, str]) -> dict[str, str]:
    """Per label a line style: the first configuration of a method solid, further ones dashed, dotted, ..."""
    seen: dict[str, int] = {}
    styles = {}
    for label in labels:
        k = seen.get(methods[label], 0)
        seen[methods[label]] = k + 1
        styles[label] = EDC_STYLES[k % len(EDC_STYLES)]
    return styles


def _fnmr_range(bottom: float, top: float) -> tuple[float, float]:
    """The y range of an EDC panel: from 0, unless every curve stays in the upper half (CFP-FP's
    FNMR near 0.85), where a range from 0 would flatten them into one line."""
    if not top > 0:
        return 0.0, 1.0
    low = bottom - 0.1 * (top - bottom) if top / 2 < bottom < top else 0.0
    return max(low, 0.0), top + 0.05 * (top - low)


def _label_panel(ax: Axes, fr: str | None, dataset: str | None, xlabel: str | None) -> None:
    """A grid panel's labels: the FR model atop the first row, the dataset beside the first
    column, the x label under the last row (None: that label is not this panel's)."""
    if fr is not None:
        ax.set_title(fr_display(fr))
    if dataset is not None:
        ax.set_ylabel(f"{dataset}\nFNMR")
    if xlabel is not None:
        ax.set_xlabel(xlabel)


def _grid_layout(frame: pd.DataFrame, order: Sequence[str], methods: Mapping[str, str] | None):  # noqa: ANN202
    """A grid figure's rows (datasets), columns (FR models), line labels in order, and each
    label's colour (its method's) and line style."""
    labels = ordered(frame["method"], list(dict.fromkeys([*order, *PAPER_METHODS])))
    of = {label: (methods or {}).get(label, label) for label in labels}
    by_method = method_colours(list(dict.fromkeys(of.values())))
    return (ordered(frame["dataset"], PAPER_DATASETS), ordered(frame["fr"], PAPER_FR), labels,
            {label: by_method[of[label]] for label in labels}, _line_styles(labels, of))


def edc_grid(curves: pd.DataFrame, discard: float, bands: pd.DataFrame | None = None, name: str = "edc_grid",
             setting: str = "", order: Sequence[str] = (), methods: Mapping[str, str] | None = None) -> Rendered:
    """Fig. 4: rows datasets x columns FR models, one step curve (FNMR vs discard) per method.

    ``curves`` has columns fr, method, dataset, discard_fraction, fnmr (the stored EDC points)
    and optionally run_id. ``method`` is what the legend names: a method configuration's
    label in an evaluation group's figure, listed in ``order``; ``methods`` maps a label to
    its method, which picks the colour (a second configuration of a method gets the same
    colour, dashed). Several runs of one label (a seeded method's seeds) are drawn thin, with
    one legend entry. Curves are drawn non-interpolated (each point's FNMR holds until the
    next point) up to ``discard``, the pAUC limit. ``bands`` (fr, method, dataset,
    discard_fraction, low, high) adds each curve's pointwise 95 % bootstrap band, shaded in the
    curve's colour (not the seeds' of a seeded method). ``setting`` names how the runs differ
    from the paper's evaluation (its caption says so; "" = the paper's). Panels are sized to be
    read at full page width.
    """
    datasets, frs, labels, colours, styles = _grid_layout(curves, order, methods)
    runs = curves["run_id"] if "run_id" in curves.columns else pd.Series("", index=curves.index)
    seeded = bool((runs.groupby([curves["method"], curves["fr"], curves["dataset"]]).nunique() > 1).any())
    width = min(EDC_PANEL_IN, EDC_MAX_IN / len(frs)) if frs else EDC_PANEL_IN
    with matplotlib.rc_context({**RC, "font.size": 9, "axes.titlesize": 9, "legend.fontsize": 9}):
        fig = Figure(figsize=(width * len(frs) + 0.5, width * EDC_ASPECT * len(datasets) + 1.0), layout="constrained")
        axes = fig.subplots(len(datasets), len(frs), squeeze=False)
        for (i, dataset), (j, fr) in ((a, b) for a in enumerate(datasets) for b in enumerate(frs)):
            ax = axes[i][j]
            here = (curves["dataset"] == dataset) & (curves["fr"] == fr)
            panel = curves[here]
            top, bottom = 0.0, math.inf
            for label in labels:
                mine = panel[panel["method"] == label]
                ids = list(dict.fromkeys(runs[mine.index]))
                for run_id in ids:
                    points = mine[runs[mine.index] == run_id].sort_values("discard_fraction", kind="stable")
                    x = points["discard_fraction"].to_numpy(float)
                    y = points["fnmr"].to_numpy(float)
                    # Extend the last step to the limit so every curve spans the plotted range.
                    inside = x <= discard
                    x_plot = np.append(x[inside], discard)
                    y_plot = np.append(y[inside], y[inside][-1] if inside.any() else np.nan)
                    thin = len(ids) > 1
                    ax.plot(x_plot, y_plot, drawstyle="steps-post", color=colours[label], ls=styles[label],
                            lw=0.8 if thin else 1.4, alpha=0.55 if thin else 1.0)
                    finite = y_plot[np.isfinite(y_plot)]
                    top = max(top, float(finite.max()) if finite.size else 0.0)
                    bottom = min(bottom, float(finite.min()) if finite.size else math.inf)
                # One band per curve: the seeds of a seeded method (thin lines) would stack theirs.
                if bands is not None and len(ids) == 1:
                    band = bands[(bands["dataset"] == dataset) & (bands["fr"] == fr) & (bands["method"] == label)]
                    band = band[band["discard_fraction"] <= discard]
                    if not band.empty:
                        ax.fill_between(band["discard_fraction"].to_numpy(float), band["low"].to_numpy(float),
                                        band["high"].to_numpy(float), step="post", color=colours[label], alpha=0.15,
                                        lw=0)
                        top = max(top, float(np.nanmax(band["high"].to_numpy(float))))
                        bottom = min(bottom, float(np.nanmin(band["low"].to_numpy(float))))
            if panel.empty:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="0.5")
            ax.set_xlim(0.0, discard)
            ax.set_ylim(*_fnmr_range(bottom, top))
            ax.grid(True, lw=0.3, alpha=0.5)
            _label_panel(ax, fr if i == 0 else None, dataset if j == 0 else None,
                         "discard fraction" if i == len(datasets) - 1 else None)
        handles = [Line2D([], [], color=colours[label], ls=styles[label], lw=1.5) for label in labels]
        _legend(fig, handles, labels)
        png, pdf = _save(fig)
    caption = (
        f"Non-interpolated EDC curves (FNMR at FMR = 1e-3 against the fraction of discarded comparisons) "
        f"up to a discard rate of {discard:g}; rows are datasets, columns FR models (cf. Fig. 4)."
        + (" Thin lines: each seed of a seeded method." if seeded else "")
        + (" Shaded: pointwise 95 % bootstrap band of each curve." if bands is not None and not bands.empty else "")
    )
    if setting:
        caption += f" Runs with other settings than the paper's protocol: {setting}."
    return Rendered(name, f"EDC curves — {setting}" if setting else "EDC curves", caption, png, pdf)


def evf_grid(points: pd.DataFrame, discard: float, name: str = "evf_grid", setting: str = "",
             order: Sequence[str] = (), methods: Mapping[str, str] | None = None) -> Rendered:
    """Error-versus-FMR curves beside the EDC: rows datasets x columns FR models, FNMR against the
    FMR target (log x) with the threshold fixed on all non-mated comparisons.

    ``points`` is :func:`bench.report.frames.evf_frame`'s frame. One line per method configuration
    (colours and styles as :func:`edc_grid`; each seed thin) after discarding ``discard`` (when the
    files hold no such discard, the largest they hold: the caption says which), and in grey the
    curve at discard 0, the FR model alone, which no quality score changes (one line, every
    method's run drawing the same). Open markers: targets whose threshold rests on fewer than
    :data:`bench.stats.edc.MIN_IMPOSTORS` non-mated comparisons at or above it (nominal).
    """
    stored = sorted(d for d in points["discard"].unique() if d > 0)
    shown = next((d for d in stored if math.isclose(d, discard, abs_tol=1e-9)), stored[-1] if stored else discard)
    datasets, frs, labels, colours, styles = _grid_layout(points, order, methods)
    fmrs = points["fmr"].to_numpy(float)
    width = min(EDC_PANEL_IN, EDC_MAX_IN / len(frs)) if frs else EDC_PANEL_IN
    nominal_seen = False

    def draw(ax: Axes, rows: pd.DataFrame, **style: object) -> None:
        nonlocal nominal_seen
        rows = rows.sort_values("fmr", kind="stable")
        x, y = rows["fmr"].to_numpy(float), rows["fnmr"].to_numpy(float)
        nominal = rows["n_false_matches"].to_numpy(float) < MIN_IMPOSTORS
        nominal_seen |= bool(nominal.any())
        line = ax.plot(x, y, **style)[0]
        ax.plot(x[~nominal], y[~nominal], ls="", marker="o", ms=3.5, color=line.get_color(), alpha=line.get_alpha())
        ax.plot(x[nominal], y[nominal], ls="", marker="o", ms=3.5, mfc="white", color=line.get_color(),
                alpha=line.get_alpha())

    with matplotlib.rc_context({**RC, "font.size": 9, "axes.titlesize": 9, "legend.fontsize": 9}):
        fig = Figure(figsize=(width * len(frs) + 0.5, width * EDC_ASPECT * len(datasets) + 1.0), layout="constrained")
        axes = fig.subplots(len(datasets), len(frs), squeeze=False)
        for (i, dataset), (j, fr) in ((a, b) for a in enumerate(datasets) for b in enumerate(frs)):
            ax = axes[i][j]
            panel = points[(points["dataset"] == dataset) & (points["fr"] == fr)]
            plain = panel[np.isclose(panel["discard"].to_numpy(float), 0.0)]
            for run_id in dict.fromkeys(plain["run_id"]):
                draw(ax, plain[plain["run_id"] == run_id], color="0.45", lw=2.2, alpha=0.5, zorder=1)
            after = panel[np.isclose(panel["discard"].to_numpy(float), shown, rtol=0, atol=1e-9)]
            for label in labels:
                mine = after[after["method"] == label]
                ids = list(dict.fromkeys(mine["run_id"]))
                for run_id in ids:
                    thin = len(ids) > 1
                    draw(ax, mine[mine["run_id"] == run_id], color=colours[label], ls=styles[label],
                         lw=0.8 if thin else 1.4, alpha=0.55 if thin else 1.0)
            if panel.empty:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="0.5")
            ax.set_xscale("log")
            if fmrs.size:
                ax.set_xlim(fmrs.min() / 1.3, fmrs.max() * 1.3)
            finite = panel["fnmr"].to_numpy(float)
            finite = finite[np.isfinite(finite)]
            ax.set_ylim(*_fnmr_range(float(finite.min()) if finite.size else 0.0,
                                     float(finite.max()) if finite.size else 0.0))
            ax.grid(True, which="both", lw=0.3, alpha=0.5)
            _label_panel(ax, fr if i == 0 else None, dataset if j == 0 else None,
                         "FMR target" if i == len(datasets) - 1 else None)
        handles = [Line2D([], [], color="0.45", lw=2.2, alpha=0.5)]
        handles += [Line2D([], [], color=colours[label], ls=styles[label], lw=1.5) for label in labels]
        _legend(fig, handles, ["no discard (FR model alone)", *labels])
        png, pdf = _save(fig)
    caption = (
        f"Error-versus-FMR (EVF) curves beside the EDC: FNMR against the FMR target (threshold fixed on all "
        f"non-mated comparisons), after discarding the lowest-quality {shown:g} of mated comparisons (one line per "
        f"method) and with no discard (grey: the FR model alone, the same for every method); rows are datasets, "
        f"columns FR models."
        + (f" The runs' EVF files hold no discard {discard:g}: shown at {shown:g}."
           if not math.isclose(shown, discard, abs_tol=1e-9) else "")
        + (f" Open markers: nominal FMR targets, whose threshold rests on fewer than {MIN_IMPOSTORS} non-mated "
           f"comparisons at or above it." if nominal_seen else "")
    )
    if setting:
        caption += f" Runs with other settings than the paper's protocol: {setting}."
    return Rendered(name, f"EVF curves — {setting}" if setting else "EVF curves", caption, png, pdf)


def score_distributions(scores: pd.DataFrame) -> Rendered:
    """Fig. 5: per dataset, a normalised histogram of each method's quality scores.

    ``scores`` has columns method, dataset, score (higher = better). Scores are min-max
    normalised per method over all its datasets, so one method's distributions stay
    comparable across datasets and methods share one axis.
    """
    datasets = ordered(scores["dataset"], PAPER_DATASETS)
    methods = ordered(scores["method"], PAPER_METHODS)
    colours = method_colours(methods)
    normalised = scores.copy()
    for method in methods:
        mask = (normalised["method"] == method) & np.isfinite(normalised["score"])
        low, high = normalised.loc[mask, "score"].min(), normalised.loc[mask, "score"].max()
        normalised.loc[mask, "score"] = (normalised.loc[mask, "score"] - low) / (high - low) if high > low else 0.5
    ncols = min(4, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(2.8 * ncols + 0.4, 2.2 * nrows + 0.8), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, dataset in enumerate(datasets):
            ax = axes[k // ncols][k % ncols]
            for method in methods:
                values = normalised.loc[(normalised["dataset"] == dataset) & (normalised["method"] == method), "score"]
                values = values[np.isfinite(values)].to_numpy(float)
                if values.size == 0:
                    continue
                density, _ = np.histogram(values, bins=edges, density=True)
                ax.stairs(density, edges, color=colours[method], lw=1.0, label=method)
            ax.set_title(dataset)
            ax.set_xlim(0.0, 1.0)
            ax.set_xlabel("normalised quality score")
            ax.grid(True, lw=0.3, alpha=0.5)
        for k in range(len(datasets), nrows * ncols):
            axes[k // ncols][k % ncols].set_visible(False)
        handles = [Line2D([], [], color=colours[m], lw=1.5) for m in methods]
        _legend(fig, handles, methods)
        png, pdf = _save(fig)
    caption = (
        "Quality-score distributions per dataset (cf. Fig. 5): histograms (density, "
        f"{HIST_BINS} bins) of each method's scores, oriented so that higher is better and min-max "
        "normalised per method over all its datasets, so only the shapes, not the raw scales, compare."
    )
    return Rendered("score_distributions", "Quality-score distributions", caption, png, pdf)


def _legend(fig: Figure, handles: list, labels: list[str]) -> None:
    """Legend above the panels, with as many columns as fit the figure's width (the longest
    label's, at least ~1.2 in each)."""
    column = max(1.2, 0.45 + 0.075 * max((len(label) for label in labels), default=0))
    ncols = max(1, min(len(labels), 6, int(fig.get_figwidth() / column)))
    fig.legend(handles, labels, loc="outside upper center", ncols=ncols, frameon=False)


def agreement_grid(pairs: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The methods of one dataset's agreement rows (paper order) and their matrix: Spearman rho
    below the diagonal, Kendall tau-b above, NaN on it and for pairs without a value."""
    methods = ordered(pd.concat([pairs["method_a"], pairs["method_b"]]), PAPER_METHODS)
    where = {m: i for i, m in enumerate(methods)}
    grid = np.full((len(methods), len(methods)), np.nan)
    for r in pairs.itertuples(index=False):
        i, j = sorted((where[r.method_a], where[r.method_b]))
        grid[j, i], grid[i, j] = r.spearman, r.kendall
    return methods, grid


def agreement_heatmap(pairs: pd.DataFrame) -> Rendered:
    """Per dataset a methods x methods heat-map of rank agreement: Spearman rho below the
    diagonal, Kendall tau-b above, the value printed in each cell.

    ``pairs`` is :func:`bench.report.frames.agreement_frame` (one row per dataset and pair).
    """
    datasets = ordered(pairs["dataset"], PAPER_DATASETS)
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    size = max(len(ordered(pd.concat([pairs["method_a"], pairs["method_b"]]), PAPER_METHODS)), 2)
    cmap = matplotlib.colormaps["RdBu_r"]
    with matplotlib.rc_context(RC):
        side = 0.45 * size + 1.4
        fig = Figure(figsize=(side * ncols + 0.8, side * nrows + 0.3), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        image = None
        for k, dataset in enumerate(datasets):
            ax = axes[k // ncols][k % ncols]
            methods, grid = agreement_grid(pairs[pairs["dataset"] == dataset])
            image = ax.imshow(grid, cmap=cmap, vmin=-1.0, vmax=1.0)
            for i, j in ((i, j) for i in range(len(methods)) for j in range(len(methods))):
                value = grid[i, j]
                text = "" if i == j else ("n/a" if math.isnan(value) else f"{value:.2f}")
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if abs(value) > 0.6 else "black")
            ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
            ax.set_yticks(range(len(methods)), methods)
            ax.set_title(f"{dataset} (lower: Spearman ρ, upper: Kendall τ)")
        for k in range(len(datasets), nrows * ncols):
            axes[k // ncols][k % ncols].set_visible(False)
        if image is not None:
            fig.colorbar(image, ax=axes, shrink=0.8, label="rank correlation")
        png, pdf = _save(fig)
    # Plain "rho"/"tau": the caption is also LaTeX text, whose escaping knows no Greek letters.
    caption = ("Rank agreement between the methods' quality scores on the images both scored, per dataset: "
               "Spearman's rho below the diagonal, Kendall's tau-b above it (the values of the agreement table).")
    return Rendered("agreement_heatmap", "Agreement between methods", caption, png, pdf)


def gallery_jpeg(rows: Sequence[GalleryRow]) -> bytes:
    """Rows of image (or text-only) tiles with their label lines, composed into one JPEG.

    The crops are pasted, resized to one tile each (PIL, Lanczos), into a single canvas at
    the figure's pixel grid and drawn by one full-figure image; labels are figure text at
    fixed inches (no layout engine), so the JPEG depends only on the tiles: the row label on
    the left, each tile's lines under its image.
    """
    from PIL import Image

    tile_px = round(TILE_IN * GALLERY_DPI)
    step = TILE_IN * 1.08
    ncols = max(len(r.tiles) for r in rows)
    heights = []
    for row in rows:
        lines = max((len(t.lines) for t in row.tiles), default=1)
        image = any(t.pixels is not None for t in row.tiles)
        heights.append((TILE_IN if image else 0.0) + LINE_IN * max(lines, len(row.label)) + 0.12)
    width, height = LABEL_IN + step * ncols + 0.1, sum(heights) + 0.1
    canvas = np.full((round(height * GALLERY_DPI), round(width * GALLERY_DPI), 3), 255, dtype=np.uint8)
    top = 0.05
    for row, h in zip(rows, heights, strict=True):
        for j, tile in enumerate(row.tiles):
            if tile.pixels is not None:
                y, x = round(top * GALLERY_DPI), round((LABEL_IN + step * j) * GALLERY_DPI)
                crop = Image.fromarray(np.ascontiguousarray(tile.pixels, dtype=np.uint8), "RGB")
                canvas[y:y + tile_px, x:x + tile_px] = np.asarray(crop.resize((tile_px, tile_px), Image.Resampling.LANCZOS))
        top += h
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(canvas.shape[1] / GALLERY_DPI, canvas.shape[0] / GALLERY_DPI), dpi=GALLERY_DPI)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.imshow(canvas, interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        height = canvas.shape[0] / GALLERY_DPI
        top = 0.05
        for row, h in zip(rows, heights, strict=True):
            image = any(t.pixels is not None for t in row.tiles)
            fig.text(0.05 / width, 1 - (top + h / 2) / height, "\n".join(row.label), ha="left", va="center", fontsize=6)
            below = top + (TILE_IN if image else 0.0) + 0.03
            for j, tile in enumerate(row.tiles):
                fig.text((LABEL_IN + step * j + TILE_IN / 2) / width, 1 - below / height, "\n".join(tile.lines),
                         ha="center", va="top", fontsize=6, linespacing=1.1)
            top += h
        # JPEG: photographs are ~4x smaller than as PNG; PIL's encoder is deterministic and no metadata is written.
        jpeg = io.BytesIO()
        fig.savefig(jpeg, format="jpeg", dpi=GALLERY_DPI, pil_kwargs={"quality": GALLERY_QUALITY})
    return jpeg.getvalue()
