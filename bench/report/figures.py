"""Figures (matplotlib, Agg): the EDC grid of Fig. 4 and the score distributions of Fig. 5.

Figures are built on ``matplotlib.figure.Figure`` (no pyplot state) under fixed rcParams
and saved without timestamps or version strings, so the same frame gives the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.published import PAPER_DATASETS, PAPER_FR, PAPER_METHODS
from bench.report.tables import fr_display, ordered

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


@dataclass(frozen=True)
class Rendered:
    """A figure as PNG and PDF bytes, with its caption."""

    name: str
    title: str
    caption: str
    png: bytes
    pdf: bytes


def method_colours(methods: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """A fixed colour per method, by its position among the paper's methods then the rest.

    The ten competitors take tab10; DifFIQA and DifFIQA(R) (11th, 12th) black and purple so
    the proposed methods stand out; further methods cycle through tab20's light shades.
    """
    palette = [*matplotlib.colormaps["tab10"].colors, (0.0, 0.0, 0.0), (0.5, 0.0, 0.5),
               *matplotlib.colormaps["tab20"].colors[1::2]]
    order = ordered(list(methods) + list(PAPER_METHODS), PAPER_METHODS)
    return {m: tuple(palette[i % len(palette)]) for i, m in enumerate(order) if m in methods}


def _save(fig: Figure) -> tuple[bytes, bytes]:
    png, pdf = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", metadata=PNG_METADATA)
    fig.savefig(pdf, format="pdf", metadata=PDF_METADATA)
    return png.getvalue(), pdf.getvalue()


def edc_grid(curves: pd.DataFrame, discard: float, bands: pd.DataFrame | None = None, name: str = "edc_grid",
             setting: str = "") -> Rendered:
    """Fig. 4: rows datasets x columns FR models, one step curve (FNMR vs discard) per method.

    ``curves`` has columns fr, method, dataset, discard_fraction, fnmr (the stored EDC points).
    Curves are drawn non-interpolated (each point's FNMR holds until the next point) up to
    ``discard``, the pAUC limit. ``bands`` (fr, method, dataset, discard_fraction, low, high)
    adds each curve's pointwise 95 % bootstrap band, shaded in the curve's colour. ``setting``
    names how the runs differ from the paper's protocol (its caption says so; "" = the paper's).
    """
    datasets = ordered(curves["dataset"], PAPER_DATASETS)
    frs = ordered(curves["fr"], PAPER_FR)
    methods = ordered(curves["method"], PAPER_METHODS)
    colours = method_colours(methods)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(2.6 * len(frs) + 0.4, 2.0 * len(datasets) + 0.8), layout="constrained")
        axes = fig.subplots(len(datasets), len(frs), squeeze=False)
        for (i, dataset), (j, fr) in ((a, b) for a in enumerate(datasets) for b in enumerate(frs)):
            ax = axes[i][j]
            panel = curves[(curves["dataset"] == dataset) & (curves["fr"] == fr)]
            top = 0.0
            for method in methods:
                points = panel[panel["method"] == method].sort_values("discard_fraction", kind="stable")
                if points.empty:
                    continue
                x = points["discard_fraction"].to_numpy(float)
                y = points["fnmr"].to_numpy(float)
                # Extend the last step to the limit so every curve spans the plotted range.
                inside = x <= discard
                x_plot = np.append(x[inside], discard)
                y_plot = np.append(y[inside], y[inside][-1] if inside.any() else np.nan)
                ax.plot(x_plot, y_plot, drawstyle="steps-post", color=colours[method], lw=1.0, label=method)
                finite = y_plot[np.isfinite(y_plot)]
                top = max(top, float(finite.max()) if finite.size else 0.0)
                if bands is not None:
                    band = bands[(bands["dataset"] == dataset) & (bands["fr"] == fr) & (bands["method"] == method)]
                    band = band[band["discard_fraction"] <= discard]
                    if not band.empty:
                        ax.fill_between(band["discard_fraction"].to_numpy(float), band["low"].to_numpy(float),
                                        band["high"].to_numpy(float), step="post", color=colours[method], alpha=0.15,
                                        lw=0)
                        top = max(top, float(np.nanmax(band["high"].to_numpy(float))))
            if panel.empty:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="0.5")
            ax.set_xlim(0.0, discard)
            ax.set_ylim(0.0, top * 1.05 if top > 0 else 1.0)
            ax.grid(True, lw=0.3, alpha=0.5)
            if i == 0:
                ax.set_title(fr_display(fr))
            if j == 0:
                ax.set_ylabel(f"{dataset}\nFNMR")
            if i == len(datasets) - 1:
                ax.set_xlabel("discard fraction")
        handles = [Line2D([], [], color=colours[m], lw=1.5) for m in methods]
        _legend(fig, handles, methods)
        png, pdf = _save(fig)
    caption = (
        f"Non-interpolated EDC curves (FNMR at FMR = 1e-3 against the fraction of discarded comparisons) "
        f"up to a discard rate of {discard:g}; rows are datasets, columns FR models (cf. Fig. 4)."
        + (" Shaded: pointwise 95 % bootstrap band of each curve." if bands is not None and not bands.empty else "")
    )
    if setting:
        caption += f" Runs with other settings than the paper's protocol: {setting}."
    return Rendered(name, f"EDC curves — {setting}" if setting else "EDC curves", caption, png, pdf)


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
    """Legend above the panels, with as many columns as fit the figure's width (~1.2 in each)."""
    ncols = max(1, min(len(labels), 6, int(fig.get_figwidth() / 1.2)))
    fig.legend(handles, labels, loc="outside upper center", ncols=ncols, frameon=False)
