"""``bench report``: assemble tables and figures and write LaTeX, Markdown, HTML, PNG and PDF.

From the published source the paper's tables are drawn cell for cell. From a results folder
the report opens with one sentence saying what it shows, then one pAUC table and one EDC
figure per evaluation group (:mod:`bench.report.groups`): every method configuration scored
on the same comparisons is a row of one table, datasets as columns and FR models as blocks.
The group of the paper's evaluation settings stands beside the published numbers
(reproduced | published | delta) for the rows run as the paper ran them; FR models with no
reproduced value are folded into one "Published only" section at the end. LaTeX, Markdown
and HTML draw the same tables. Nothing is recomputed: pAUC rows and EDC points are read as
``bench run`` wrote them. Faces (quality-ordered strips from the crop cache and the DifFIQA
reconstruction rows) come from :mod:`bench.report.strips`, unless ``images`` is off.

Beside each EDC figure stands an error-versus-FMR figure (from the runs' EVF files), and each
table's caption says when its FMR target is nominal: the threshold of a cell resting on fewer
than :data:`bench.stats.edc.MIN_IMPOSTORS` non-mated comparisons (LFW's 3,000 at FMR 1e-3: 3),
with the realised FMR across its folds, as the run records hold them.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import bench
from bench.core import paths
from bench.core.cards import load_cards
from bench.core.errors import BenchError
from bench.core.io import atomic_write_bytes, atomic_write_text
from bench.report import frames, groups, strips, tables
from bench.report.figures import Rendered, agreement_heatmap, edc_grid, evf_grid, score_distributions
from bench.report.model import Table
from bench.report.render import render, render_latex, render_markdown
from bench.results import published
from bench.results.check import assumed_note
from bench.stats.edc import MIN_IMPOSTORS

SECTIONS: tuple[str, ...] = ("datasets", "pauc", "average", "runtime", "ablation", "breakdown", "edc", "scores",
                             "agreement", "strips", "reconstructions")
FIGURE_SECTIONS = frozenset({"edc", "scores", "agreement", "strips", "reconstructions"})
ALIASES: dict[str, str] = {
    "1": "datasets", "table1": "datasets",
    "2": "pauc", "5": "pauc", "table2": "pauc", "table5": "pauc",
    "6": "average", "7": "average", "table6": "average", "table7": "average", "averages": "average",
    "3": "runtime", "table3": "runtime",
    "4": "ablation", "table4": "ablation",
    "8": "breakdown", "table8": "breakdown",
    "fig4": "edc", "figure4": "edc", "fig5": "scores", "figure5": "scores",
    "fig6": "strips", "figure6": "strips", "fig1": "reconstructions", "figure1": "reconstructions",
}
NO_IMAGES = "Images left out (--no-images): the dataset's licence may forbid showing its faces."
PAPER_DEVICE = "Intel i9-10900KF CPU, Nvidia RTX 3090 GPU (paper)"
PUBLISHED = "published"
METRIC_NAMES: dict[str, str] = {"pauc": "pAUC", "floor-relative": "floor-relative pAUC",
                                 "author-scripts": "author scripts' AUC"}
# The same names opening a sentence or a title.
METRIC_TITLES: dict[str, str] = {"pauc": "pAUC", "floor-relative": "Floor-relative pAUC",
                                  "author-scripts": "Author scripts' AUC"}
FLOOR_DEFINITION = ("floor-relative pAUC = (pAUC − best) / (1 − best), best = the cell's theoretical best pAUC given "
                    "its FNMR at discard 0 (Schlett et al.'s area under theoretical best): 0 at the best any quality "
                    "ordering can reach, 1 at no gain over not discarding")
NO_PUBLISHED_FLOOR = ("Published values have no run record, hence no theoretical best: they appear under the plain "
                      "metric only (--metric pauc).")
AUTHOR_DEFINITION = ("author scripts' AUC = the CR-FIQA ERC script's convention (MagFace's draws the same curve): "
                     "mated and non-mated pairs pooled and discarded lowest pair quality first, at each discard "
                     "fraction 0, 0.05, ..., 0.95 the FMR threshold recomputed on the non-mated pairs left and the "
                     "FNMR taken on the mated pairs left, then the trapezoid area over 0–0.95, not normalised (so on "
                     "another scale than pAUC; the same at every --discard and for every EDC variant of a cell). "
                     "The scripts pick the threshold at the nearest ROC point and count a score equal to it as a "
                     "non-match; fiqa-bench takes the linear quantile and counts it as a match (bench/stats/edc.py)")
NO_PUBLISHED_AUTHOR = ("Published values are the paper's pAUC: they appear under the plain metric only "
                       "(--metric pauc).")
METRIC_DEFINITIONS: dict[str, str] = {"floor-relative": f"{FLOOR_DEFINITION}. {NO_PUBLISHED_FLOOR}",
                                      "author-scripts": f"{AUTHOR_DEFINITION}. {NO_PUBLISHED_AUTHOR}"}


@dataclass(frozen=True)
class Section:
    """One part of the report: a table, a figure, or a note.

    LaTeX, Markdown and HTML draw the same ``table`` (for results: beside the published
    numbers where there are comparable ones). ``galleries`` hold faces: thumbnails in HTML, a
    composed JPEG in LaTeX and Markdown. A section with only a ``note`` is drawn as one line.
    """

    key: str
    title: str
    table: Table | None = None
    figure: Rendered | None = None
    note: str = ""
    galleries: tuple[strips.Gallery, ...] = ()


def resolve_sections(names: Sequence[str] | None) -> list[str]:
    """Section keys in report order; ``None`` means all. Unknown names raise one clear line."""
    if not names:
        return list(SECTIONS)
    wanted = set()
    for name in names:
        key = ALIASES.get(name.lower(), name.lower())
        if key not in SECTIONS:
            raise BenchError(f"unknown report table {name!r} (known: {', '.join(SECTIONS)})")
        wanted.add(key)
    return [s for s in SECTIONS if s in wanted]


def _note(key: str, title: str, text: str) -> Section:
    return Section(key, title, note=text)


def _discard_text(discard: float) -> str:
    return f"discard {discard:g}"


def published_sections(keys: Sequence[str], discard: float, reference: str, data_root: Path | None = None) -> list[Section]:
    """The paper's own tables from the transcribed published numbers.

    With a ``data_root``, Table 1 counts the datasets found there, beside the paper's row.
    """
    out = []
    for key in keys:
        if key == "datasets":
            frame = (_table1_from_data(data_root, reference) if data_root is not None
                     else published.load_table("table1_datasets", reference))
            out.append(Section(key, "Datasets", tables.render_table1(frame)))
        elif key == "pauc":
            frame = frames.published_pauc(reference, discard)
            out.append(Section(key, "pAUC", tables.pauc_table(frame, discard)) if not frame.empty else
                       _note(key, "pAUC", f"The paper reports no pAUC at {_discard_text(discard)} (only 0.2 and 0.3)."))
        elif key == "average":
            frame = frames.published_averages(reference, discard)
            out.append(Section(key, "Averages", tables.average_table(frame, discard)) if not frame.empty else
                       _note(key, "Averages", f"The paper reports no averages at {_discard_text(discard)}."))
        elif key == "runtime":
            frame = published.load_table("table3_runtime_ms", reference).assign(device=PAPER_DEVICE)
            out.append(Section(key, "Runtime", tables.runtime_table(frame)))
        elif key == "ablation":
            frame = _at(published.load_table("table4_ablation", reference), discard)
            out.append(Section(key, "Ablation", tables.ablation_table(frame, discard)) if not frame.empty else
                       _note(key, "Ablation", f"The paper reports the ablation at discard 0.3 only, not {discard:g}."))
        elif key == "breakdown":
            frame = published.load_table("table8_runtime_breakdown_ms", reference).assign(device=PAPER_DEVICE)
            out.append(Section(key, "Runtime breakdown", tables.breakdown_table(frame)))
        elif key in FIGURE_SECTIONS and not any(s.key == "figures" for s in out):
            out.append(_note("figures", "Figures", "The published source holds numbers only: figures need a results folder."))
    return out


def _at(frame: pd.DataFrame, discard: float) -> pd.DataFrame:
    return frame[[math.isclose(d, discard, abs_tol=1e-9) for d in frame["discard"]]].reset_index(drop=True)


def _ablation_labels(reference: pd.DataFrame) -> dict[str, str]:
    """Row labels: the published ones, else a method card's ``paper_row``.

    The published label wins because the complete model's card prints as plain "DifFIQA"
    while Table 4 calls that row "DifFIQA (complete)".
    """
    labels = dict(zip(reference["variant"], reference["label"], strict=True))
    cards = load_cards("method")
    for method, variant in frames.ABLATION_VARIANTS.items():
        row = cards[method].get("paper_row") if method in cards else None
        if row and variant not in labels:
            labels[variant] = str(row)
    return labels


def _table1_from_data(data_root: Path, reference: str) -> pd.DataFrame:
    """Found dataset counts (``bench.datasets.dataset_stats``) with the paper's quality factors added."""
    from bench.datasets.dataset_stats import table1_frame  # imports the dataset loaders: only when asked

    found = table1_frame(data_root)
    extra = published.load_table("table1_datasets", reference).drop(
        columns=["images", "identities", "mated", "nonmated"])
    return found.merge(extra, on="dataset", how="left")


def _best_text(rows: pd.DataFrame) -> str:
    """The theoretical best pAUC of each cell of a group, e.g. ``dlib × LFW 0.054``."""
    cells = rows.drop_duplicates(["fr", "dataset"]).sort_values(["fr", "dataset"])
    return "; ".join(f"{tables.fr_display(r.fr)} × {r.dataset} {tables.fmt(float(r.best), tables.PAUC_DECIMALS)}"
                     for r in cells.itertuples(index=False))


def _rate(value: float) -> str:
    """A realised FMR as printed: ``0``, ``1.0e-3``, ``3.3e-3``."""
    if value == 0:
        return "0"
    mantissa, _, exponent = f"{value:.1e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


def nominal_text(rows: pd.DataFrame) -> str:
    """The caption sentence saying which cells of a group have a nominal FMR target, from their run
    records' ``fmr_support`` (``""`` when none is nominal or no record holds one): per cell how many
    non-mated scores the threshold rests on and the realised FMR, overall and across folds."""
    cells: dict[str, None] = {}
    for r in rows.sort_values(["fr", "dataset"], kind="stable").itertuples(index=False):
        support = getattr(r, "fmr_support", None)
        if not isinstance(support, dict) or not support.get("nominal"):
            continue
        folds = support.get("fold_realised_fmr")
        spread = f"; {_rate(folds[0])}–{_rate(folds[1])} across folds" if folds else ""
        cells[(f"{tables.fr_display(r.fr)} × {r.dataset} rests on {support['n_false_matches']} of "
               f"{support['n_nonmated']:,} (realised FMR {_rate(support['realised_fmr'])}{spread})")] = None
    if not cells:
        return ""
    fmr = ", ".join(sorted({tables.fmr_text(f) for f in rows["fmr"]}))
    return (f"FMR {fmr} is nominal here: the threshold rests on fewer than {MIN_IMPOSTORS} non-mated scores at or "
            f"above it, so the operating point interpolates between a handful of extreme impostor scores: "
            + "; ".join(cells) + ".")


def _group_caption(group: groups.Group, discard: float, assumed: str, metric: str = "pauc") -> str:
    fmr = ", ".join(sorted({tables.fmr_text(f) for f in group.rows["fmr"]}))
    name = METRIC_NAMES[metric]
    means = "; green, blue and red the three lowest means" if group.rows["dataset"].nunique() > 1 else ""
    where = "over discard 0–0.95" if metric == "author-scripts" else f"at a discard rate of {discard:g}"
    ties = (" (no bootstrap of this AUC, so no test of ties)" if metric == "author-scripts"
            else " and every row tied with it by the paired bootstrap test")
    text = (f"{METRIC_TITLES[metric]} {where} and FMR = {fmr} ({tables.LOWER_BETTER}), "
            f"{group.setting or groups.PAPER_SETTINGS_TITLE}: every method configuration scored on these "
            f"comparisons is a row. Bold marks the lowest {name} per dataset{ties}{means}.")
    if metric == "floor-relative":
        text += (f" {FLOOR_DEFINITION[0].upper()}{FLOOR_DEFINITION[1:]}; intervals are transformed alike. "
                 f"Theoretical best pAUC per cell: {_best_text(group.rows)}.")
    if metric == "author-scripts":
        text += f" {AUTHOR_DEFINITION[0].upper()}{AUTHOR_DEFINITION[1:]}."
    if group.counts:
        text += " Comparisons: " + "; ".join(group.counts) + "."
    nominal = nominal_text(group.rows)
    if nominal:
        text += f" {nominal}"
    return text + (f" {assumed}." if assumed else "")


def _pauc_sections(tidy: pd.DataFrame, found: list[groups.Group], discard: float, pub: pd.DataFrame,
                   why: frames.Reasons, published_blocks: bool, assumed: str,
                   metric: str = "pauc") -> tuple[list[Section], Section | None]:
    """One pAUC section per evaluation group, and the published-only section.

    The group of the paper's evaluation settings is set beside the published numbers for the
    FR models with a row of the paper's protocol; the published blocks of the other FR models
    are left to one "Published only" section (None without ``published_blocks``).
    """
    compared_fr = set(tidy.loc[tidy["differs"] == "", "fr"]) & set(pub["fr"])
    compared, rest = pub[pub["fr"].isin(compared_fr)], pub[~pub["fr"].isin(compared_fr)]
    out = []
    for group in found:
        frame = group.rows.assign(method=group.rows["label"])
        reference = compared if group.key == "pauc" and not compared.empty else None
        fmr = ", ".join(sorted({tables.fmr_text(f) for f in group.rows["fmr"]}))
        name = METRIC_NAMES[metric]
        # ASCII in a title: the LaTeX template prints it unescaped in a comment.
        where = "over discard 0-0.95" if metric == "author-scripts" else f"at discard {discard:g}"
        table = tables.pauc_table(frame, discard, reference, why,
                                  title=f"{METRIC_TITLES[metric]} {where}, FMR = {fmr}",
                                  caption=_group_caption(group, discard, assumed, metric), key=group.key, fmr=fmr,
                                  label_notes=group.label_notes, row_order=group.order, row_methods=group.methods,
                                  metric=name)
        out.append(Section(group.key, groups.group_title(group), table))
    only = None
    if published_blocks and not rest.empty:
        only = Section("published-only", "Published only", tables.pauc_table(
            rest, discard, key="published-only", title=f"Published pAUC at discard {discard:g}",
            caption=(f"The paper's pAUC at a discard rate of {discard:g} and FMR = 1e-3 ({tables.LOWER_BETTER}) "
                     "for the FR models with no reproduced value (reference data, not results of this harness).")))
    return out, only


def summary(tidy: pd.DataFrame, found: list[groups.Group], pub: pd.DataFrame, metric: str = "pauc") -> str:
    """The report's first sentence: what the reader looks at (the metric named unless plain pAUC),
    and whether anything meets the paper."""
    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    configs = len(tidy[["method_id", "config"]].drop_duplicates())
    methods = tidy["method"].nunique()
    text = (f"Your results: {count(tidy['dataset'].nunique(), 'dataset')} × {count(tidy['fr'].nunique(), 'FR model')}, "
            f"{count(methods, 'method')}" + (f" ({configs} configurations)" if configs > methods else "")
            + f" in {count(len(found), 'evaluation group')}; ")
    if metric != "pauc":
        return text + f"shown as {METRIC_DEFINITIONS[metric]}"
    paper = tidy[tidy["differs"] == ""]
    compared = paper[paper["fr"].isin(set(pub["fr"]))]
    if not compared.empty:
        cells = compared[["fr", "method", "dataset"]].drop_duplicates()
        verb = "matches" if len(cells) == 1 else "match"
        return text + (f"{count(len(cells), 'cell')} {verb} the paper's protocol, so the first table sets "
                       f"{'it' if len(cells) == 1 else 'them'} beside the published values (Δ).")
    why = " (no FR model of the paper)" if not paper.empty else ""
    return text + f"nothing matches the paper's protocol{why}, so no Δ column."


def results_sections(
    keys: Sequence[str],
    results: Path,
    discard: float,
    reference: str,
    reasons: frames.Reasons | None,
    edc_variant: str | None,
    data_root: Path | None,
    published_blocks: bool = True,
    bands: bool = False,
    cache: Path | None = None,
    strip: int = strips.DEFAULT_STRIP,
    images: bool = True,
    metric: str = "pauc",
) -> tuple[list[Section], str, str]:
    """Reproduced tables and figures from a results folder, the EDC variant shown and the summary line.

    ``metric`` ``floor-relative`` shows each pAUC as :func:`bench.report.frames.floor_relative`
    makes it (the theoretical best per cell in each caption), ``author-scripts`` the author
    scripts' AUC of each run record (:func:`bench.report.frames.author_scripts`; n/a, "rerun to
    get it", for a record without one); published values, which are the paper's pAUC, are left
    out, and the tables under the paper's captions (averages, ablation) become a note saying so.

    pAUC tables and EDC figures come one per evaluation group (:mod:`bench.report.groups`);
    tables under the paper's captions (averages, runtime, ablation) hold only rows of the
    paper's protocol; the published pAUC blocks of FR models with no reproduced value come
    last (``published_blocks``). Strips show ``strip`` quantiles per (dataset, method) from
    the crop ``cache`` (default :func:`bench.core.paths.cache_dir`); ``images`` False leaves
    every face out.
    """
    tidy, variant = frames.results_pauc(results, discard, edc_variant)
    if metric == "floor-relative":
        tidy = frames.floor_relative(tidy)
    elif metric == "author-scripts":
        tidy = frames.author_scripts(tidy)
    found = groups.evaluation_groups(tidy)
    paper = groups.merge_seeds(tidy[tidy["differs"] == ""])
    # Ablation variants get Table 4; Tables 6/7 and the runtimes compare the full methods.
    variants_only = [m for m, v in frames.ABLATION_VARIANTS.items() if v != "complete"]
    main = paper[~paper["method_id"].isin(variants_only)]
    why = {**frames.load_not_run(results), **(reasons or {})}
    pub = frames.published_pauc(reference, discard)
    if metric != "pauc":
        pub = pub.iloc[0:0]
    runs = frames.load_runs(results) if {"runtime", "breakdown"} & set(keys) else None
    out = []
    only = None
    for key in keys:
        if key == "datasets":
            if data_root is None:
                out.append(_note(key, "Datasets", "Table 1 needs the data root (--data-root) to count the datasets."))
            else:
                out.append(Section(key, "Datasets", tables.render_table1(_table1_from_data(data_root, reference))))
        elif key == "pauc":
            sections, only = _pauc_sections(tidy, found, discard, pub, why, published_blocks,
                                            assumed_note(tidy, variant), metric)
            out += sections
        elif key in ("average", "ablation") and metric != "pauc":
            title = "Averages" if key == "average" else "Ablation"
            out.append(_note(key, title, f"This table stands beside the paper's pAUC: {METRIC_NAMES[metric]} has no "
                                         "published counterpart; see --metric pauc."))
        elif key == "average":
            # Tables 6/7 average over the paper's FR models: an average over others is not theirs.
            theirs = main[main["fr"].isin(published.PAPER_FR)]
            if theirs.empty:
                out.append(_note(key, "Averages", "No result of the paper's protocol with its FR models to average."))
                continue
            mine = frames.averages(frames.add_means(theirs), pub if not pub.empty else None)
            ref = frames.published_averages(reference, discard)
            out.append(Section(key, "Averages", tables.average_table(mine, discard, ref if not ref.empty else None)))
        elif key == "runtime":
            mine = frames.runtime_frame(runs[~runs["method_id"].isin(variants_only)])
            ref = published.load_table("table3_runtime_ms", reference)
            out.append(Section(key, "Runtime", tables.runtime_table(mine, ref))
                       if not mine.empty else _note(key, "Runtime", "No run records a scoring time."))
        elif key == "ablation":
            ref = _at(published.load_table("table4_ablation", reference), discard)
            labels = _ablation_labels(published.load_table("table4_ablation", reference))
            mine = frames.ablation_frame(paper, labels)
            names = ", ".join(frames.ABLATION_VARIANTS)
            out.append(Section(key, "Ablation", tables.ablation_table(mine, discard, ref if not ref.empty else None))
                       if not mine.empty else
                       _note(key, "Ablation", f"No ablation results ({names}) run as the paper's protocol with "
                                              f"{frames.ABLATION_FR}."))
        elif key == "breakdown":
            mine = frames.breakdown_frame(runs)
            ref = published.load_table("table8_runtime_breakdown_ms", reference)
            out.append(Section(key, "Runtime breakdown", tables.breakdown_table(mine, ref))
                       if not mine.empty else
                       _note(key, "Runtime breakdown", "No DifFIQA run records a runtime_breakdown."))
        elif key == "edc":
            out += _edc_sections(results, found, discard, bands, bool(tidy.attrs["assumed"]))
        elif key == "scores":
            scores = frames.score_frame(results)
            out.append(Section(key, "Score distributions", figure=score_distributions(scores)) if not scores.empty
                       else _note(key, "Score distributions", "No score files under scores/."))
        elif key == "agreement":
            pairs = frames.agreement_frame(frames.score_frame(results))
            out.append(Section(key, "Agreement between methods", tables.agreement_table(pairs),
                               figure=agreement_heatmap(pairs)) if not pairs.empty
                       else _note(key, "Agreement between methods", "Fewer than two methods scored the same images."))
        elif key == "strips":
            out.append(_strips_section(results, cache, strip, images))
        elif key == "reconstructions":
            out.append(_reconstructions_section(results, images))
    return out + ([only] if only is not None else []), variant, summary(tidy, found, pub, metric)


def _evf_section(results: Path, group: groups.Group, discard: float) -> Section | None:
    """The EVF figure of one evaluation group (None when none of its runs has an EVF file); runs
    without one are named by count in the section's note."""
    runs = group.runs.assign(method=group.runs["label"])
    points, missing = frames.evf_frame(results, runs)
    if points.empty:
        return None
    name = "evf_grid" + group.key.removeprefix("pauc").replace("-", "_")
    figure = evf_grid(points, discard, name, group.setting, group.order, group.methods)
    note = (f"{len(missing)} of {len(runs)} runs have no EVF file (made before bench run wrote one) and are not "
            "drawn: rerun them to add their curves." if missing else "")
    title = f"EVF curves — {group.setting or groups.PAPER_SETTINGS_TITLE}"
    return Section(group.key.replace("pauc", "evf", 1), title, figure=figure, note=note)


def _edc_sections(results: Path, found: list[groups.Group], discard: float, bands: bool,
                  assumed: bool) -> list[Section]:
    """One EDC figure per evaluation group: every configuration's curve (each seed's, thin),
    panels datasets x FR models (for the paper's settings: Fig. 4), each followed by its EVF
    figure (:func:`_evf_section`); groups whose runs have no EVF file are named in one note."""
    if assumed:
        return [_note("edc", "EDC curves", "pauc.csv has only the published columns: no EDC curves.")]
    out = []
    without_evf = []
    for group in found:
        runs = group.runs.assign(method=group.runs["label"])
        key = group.key.replace("pauc", "edc", 1)
        title = f"EDC curves — {group.setting or groups.PAPER_SETTINGS_TITLE}"
        name = "edc_grid" + group.key.removeprefix("pauc").replace("-", "_")
        figure = edc_grid(frames.curve_frame(results, runs), discard,
                          frames.band_frame(results, runs) if bands else None, name,
                          group.setting, group.order, group.methods)
        out.append(Section(key, title, figure=figure))
        evf = _evf_section(results, group, discard)
        if evf is None:
            without_evf.append(group.setting or groups.PAPER_SETTINGS_TITLE)
        else:
            out.append(evf)
    if without_evf:
        out.append(_note("evf", "EVF curves", "No EVF file (curves/<run_id>.evf.parquet) for the runs of "
                         + "; ".join(without_evf) + ": they were made before bench run wrote one; rerun them to "
                         "get the error-versus-FMR curves."))
    return out


def _strips_section(results: Path, cache: Path | None, strip: int, images: bool) -> Section:
    """Fig. 6: quality-ordered crops per (dataset, method), or a one-line note why there are none."""
    title = "Images ordered by quality"
    scores = frames.score_frame(results)
    if scores.empty:
        return _note("strips", title, "No score files under scores/: strips order each image by its quality score "
                                      "(bench run writes them; a reference set ships none).")
    if not images:
        return _note("strips", title, NO_IMAGES)
    cache = paths.cache_dir(cache)
    if not (cache / "crops").is_dir():
        # The folder is not named: a report depends on its inputs only, not on where they lie.
        return _note("strips", title, "No crop cache found (give --cache DIR): no image strips.")
    galleries, notes = strips.strip_galleries(scores, cache, strip)
    if not galleries:
        return _note("strips", title, " ".join(notes) or "No cached crop of any scored image.")
    return Section("strips", title, note=" ".join(notes), galleries=tuple(galleries))


def _reconstructions_section(results: Path, images: bool) -> Section:
    """Fig. 1 (right): the DifFIQA examples files as rows of input, x_t and reconstructions."""
    title = "What the DDPM reconstructs"
    files = strips.example_files(results)
    if not files:
        return _note("reconstructions", title, "No reconstruction examples (bench run --method diffiqa "
                     "--method-option save_examples=K writes them).")
    if not images:
        return _note("reconstructions", title, NO_IMAGES)
    return Section("reconstructions", title, galleries=tuple(strips.example_gallery(p, results) for p in files))


def _check_out(out: Path) -> None:
    """Refuse an output folder that is (or whose subfolders are) a file, before anything is written."""
    for path in (out, out / "tables", out / "figures"):
        if path.exists() and not path.is_dir():
            raise BenchError(f"--out {out}: {path} is a file, not a folder; name a folder (created when missing)")


def _with_ci(section: Section) -> Section:
    """The section with its table printing intervals."""
    return dataclasses.replace(section, table=section.table and dataclasses.replace(section.table, show_ci=True))


def _has_ci(sections: Sequence[Section]) -> bool:
    """Whether any cell carries an interval (the HTML page then offers the toggle)."""
    return any(c.ci for s in sections if s.table is not None for b in s.table.blocks for r in b.rows for c in r)


def build_report(
    results: Path | None,
    source: str = PUBLISHED,
    discard: float = 0.3,
    out: Path = Path("bench-report"),
    tables: list[str] | None = None,
    data_root: Path | None = None,
    *,
    reasons: frames.Reasons | None = None,
    edc_variant: str | None = None,
    reference: str = published.DEFAULT_SOURCE,
    published_blocks: bool = True,
    ci: bool = True,
    bands: bool = False,
    cache: Path | None = None,
    strip: int = strips.DEFAULT_STRIP,
    images: bool = True,
    metric: str = "pauc",
) -> list[Path]:
    """Write the report into ``out`` and return the files written, sorted.

    ``results`` None draws the published tables; a folder draws its reproduced numbers next
    to the published ``reference``. ``source`` is the --source text, shown on the page.
    ``tables`` limits the sections (names or paper numbers, see :data:`ALIASES`).
    ``reasons`` maps printed (fr, method, dataset), ``*`` for any, to why a cell was not run;
    it adds to ``runs/not_run.json``. ``edc_variant`` None picks the harness default.
    ``published_blocks`` False leaves out the published-only section; ``ci`` False hides the
    bootstrap intervals (LaTeX and Markdown leave them out, HTML behind a toggle);
    ``bands`` shades each EDC curve's bootstrap band (runs made with --bootstrap).
    ``cache`` is the crop cache of the image strips (default :func:`bench.core.paths.cache_dir`),
    ``strip`` their number of quantiles; ``images`` False leaves every face image out.
    ``metric`` (:data:`bench.report.frames.METRICS`) is what the results' pAUC tables show:
    ``pauc``, ``floor-relative`` or ``author-scripts`` (:func:`results_sections`; needs a
    results folder).
    Writes report.{html,md,tex}, tables/<key>.{tex,md}, figures/<name>.{png,pdf} and, per
    gallery of faces, figures/<name>.jpg.
    """
    if not (0.0 < discard <= 1.0):
        raise BenchError(f"--discard must be in (0, 1], got {discard:g}")
    if metric not in frames.METRICS:
        raise BenchError(f"--metric must be one of {', '.join(frames.METRICS)}, got {metric!r}")
    if metric != "pauc" and results is None:
        raise BenchError(f"--metric {metric} needs a results folder (--source): published values have no run "
                         "record" + (", hence no theoretical best" if metric == "floor-relative" else ""))
    if not (2 <= strip <= strips.MAX_STRIP):
        raise BenchError(f"--strip must be between 2 and {strips.MAX_STRIP} (quantiles lowest to highest), got {strip}")
    out = Path(out)
    _check_out(out)
    keys = resolve_sections(tables)
    if results is None:
        sections, variant = published_sections(keys, discard, reference, data_root), ""
        headline = f"The paper's published numbers ({reference}): no result of this harness."
    else:
        sections, variant, headline = results_sections(keys, Path(results), discard, reference, reasons, edc_variant,
                                                       data_root, published_blocks, bands, cache, strip, images,
                                                       metric)
    if ci:
        sections = [_with_ci(s) for s in sections]
    written: list[Path] = []
    figures = {}
    for section in sections:
        if section.figure is not None:
            fig = section.figure
            for suffix, data in (("png", fig.png), ("pdf", fig.pdf)):
                path = out / "figures" / f"{fig.name}.{suffix}"
                atomic_write_bytes(path, data)
                written.append(path)
            figures[fig.name] = base64.b64encode(fig.png).decode("ascii")
        for gallery in section.galleries:
            path = out / "figures" / f"{gallery.name}.jpg"
            atomic_write_bytes(path, gallery.jpeg)
            written.append(path)
        if section.table is not None:
            for suffix, text in (("tex", render_latex(section.table)), ("md", render_markdown(section.table))):
                path = out / "tables" / f"{section.key}.{suffix}"
                atomic_write_text(path, text)
                written.append(path)
    context = {
        "sections": sections,
        "headline": headline,
        "figures": figures,
        "source": source if results is not None else PUBLISHED,
        "reference": reference,
        "discard": f"{discard:g}",
        "edc_variant": variant,
        "compare": results is not None,
        "has_ci": _has_ci(sections),
        "show_ci": ci,
        "version": bench.__version__,
    }
    for name in ("report.html", "report.md", "report.tex"):
        path = out / name
        atomic_write_text(path, render(f"{name}.j2", **context))
        written.append(path)
    return sorted(written)
